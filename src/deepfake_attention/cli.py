"""Command line: each subcommand parses its flags and calls one library function, nothing more."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Callable, Sequence

from .evaluation.options import CALIBRATION_FITS


def _add_analyze(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image and video files and folders (walked recursively)")
    parser.add_argument("--out", default="out/analyze", help="output folder (default: out/analyze)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--batch-size", type=int, default=16, help="faces per forward pass (default 16)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding inputs (default 0: in process)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto; under torchrun each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                        help="mixed precision: auto (bf16, or fp16 where unsupported, on CUDA; off on CPU), off, bf16 or fp16; Grad-CAM++ maths stays fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the scoring forward (used with --no-cam)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --out: inputs already done are skipped (same model, options and inputs required)")
    parser.add_argument("--no-cam", action="store_true", help="skip Grad-CAM++ (faster; attention maps only)")
    parser.add_argument("--save-maps", choices=("none", "panel", "all"), default="panel", help="rendered files: none, a panel per input (default), or also per-face map PNGs")
    parser.add_argument("--threshold", type=float, default=None, help="P(fake) threshold for label=fake (default: the checkpoint's)")
    parser.add_argument("--no-face-detect", action="store_true", help="score the whole image instead of detected faces")
    parser.add_argument("--fail-on-no-face", action="store_true", help="exit 1 when an input has no face")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest image decoded, in pixels (default 64 million)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    video = parser.add_argument_group("videos")
    video.add_argument("--frames", type=int, default=32, help="frames sampled uniformly from each video (default 32)")
    video.add_argument("--fps", type=float, default=None, help="sample videos every 1/FPS seconds instead of --frames (long videos are streamed in chunks)")
    video.add_argument("--aggregate", choices=("mean", "median", "topk"), default="mean", help="per face track: mean (default), median or top-k mean of its frames' P(fake); a video scores the max over its tracks")
    video.add_argument("--topk", type=int, default=3, help="k for --aggregate topk (default 3)")
    video.add_argument("--annotate", action="store_true", help="also write each video's sampled frames with the heatmap on every face (annotated/*.mp4)")
    video.add_argument("--temporal-head", action="store_true", help="score face tracks with the checkpoint's temporal-attention head (error if it has none; off by default)")
    video.add_argument("--consistency-threshold", type=float, default=0.5, help="mark video frames whose attention map correlates less than this with the track's previous frame (default 0.5)")


def _run_analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze
    from .data.media import DEFAULT_MAX_PIXELS

    summary = analyze(
        args.inputs, args.out, model=args.model, command=_command_line(), resume=args.resume,
        batch_size=args.batch_size, workers=args.workers, device=args.device, amp=args.amp, compile=args.compile, cam=not args.no_cam,
        save_maps=args.save_maps, threshold=args.threshold, face_detect=not args.no_face_detect,
        fail_on_no_face=args.fail_on_no_face, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        progress=False if args.quiet else None, frames=args.frames, fps=args.fps, aggregate=args.aggregate, topk=args.topk,
        annotate=args.annotate, temporal_head=args.temporal_head, consistency_threshold=args.consistency_threshold,
    )
    if not args.quiet and summary.rank == 0:
        _print_table(summary)
        if summary.resumed_rows:
            print(f"resumed: {summary.resumed_rows} of these rows were finished by an earlier run into this folder")
    return summary.exit_code


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, model=args.model, device=args.device)
    _print_table(summary)
    print(f"\nHTML report: {summary.report.resolve()}")
    return summary.exit_code


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    splits = ("train", "val", "test")
    parser.add_argument("manifest", help="manifest CSV of labelled face crops (path, label; optional mask, video_id, frame, split), "
                                         "or with --media of whole images and videos")
    parser.add_argument("--out", default="out/evaluate", help="output folder for metrics.json and report.html (default: out/evaluate)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--split", choices=splits, default=None, help="evaluate only this split of the manifest (default: every row)")
    parser.add_argument("--calibration", default=None, metavar="MANIFEST",
                        help="manifest to fit the temperature (T in [0.5, 5]; see --calibration-fit) on and to pick the threshold at --target-fpr on")
    parser.add_argument("--calibration-split", choices=splits, default=None,
                        help="calibrate on this split of --calibration (or of MANIFEST when --calibration is not given), e.g. val")
    parser.add_argument("--calibration-fit", choices=CALIBRATION_FITS, default="temperature",
                        help="what the calibration rows fit: a temperature (default), or a temperature and an offset, "
                             "P(fake) = sigmoid(gap / T + offset), as calibrate --fit affine")
    parser.add_argument("--prior-masks", default=None, metavar="MANIFEST",
                        help="manifest whose fakes' masks make the mean-mask localisation baseline, normally the training set "
                             "(default: the evaluated fakes' own masks, reported as an optimistic baseline)")
    parser.add_argument("--threshold", type=float, default=None, help="P(fake) threshold for label=fake (default: the checkpoint's)")
    parser.add_argument("--target-fpr", type=float, default=0.05, help="also report the threshold reaching this false-positive rate (default 0.05)")
    parser.add_argument("--robustness", action="store_true", help="re-score under JPEG 90/70/50, downscale x0.5/x0.25, blur and noise; AUC per level")
    parser.add_argument("--faithfulness-limit", type=int, default=64, help="fakes for deletion/insertion and the randomisation check (default 64; 0 skips)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for the AUC's 95%% CI (default 200; 0 skips)")
    parser.add_argument("--top-k", type=int, default=4, help="examples per group in the report's grid (default 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="crops (faces, with --media) per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise perturbation, the faithfulness subset and the bootstrap (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    media = parser.add_argument_group("whole images and videos (--media)")
    media.add_argument("--media", action="store_true",
                       help="the manifest lists whole images and videos (as `manifest ffpp|celebdf|folder` writes): run them through analyze "
                            "(face detection, tracks, aggregation) into OUT/analysis and report media-level and face-level AUC, TPR and FPR, "
                            "overall, per manipulation type and per source of the reals")
    media.add_argument("--save-maps", choices=("none", "panel", "all"), default=None, help="with --media: rendered files of the analysis (default none)")
    media.add_argument("--frames", type=int, default=None, help="with --media: frames sampled uniformly from each video (default 32)")
    media.add_argument("--fps", type=float, default=None, help="with --media: sample videos every 1/FPS seconds instead of --frames")
    media.add_argument("--aggregate", choices=("mean", "median", "topk"), default=None, help="with --media: per face track reduction (default mean)")
    media.add_argument("--workers", type=int, default=None, help="with --media: DataLoader workers decoding the files (default 0)")
    media.add_argument("--resume", action="store_true", help="with --media: continue (or reuse) the analysis in OUT/analysis")
    media.add_argument("--ci-min", type=int, default=None, help="with --media: fewest files of each class a group needs for a bootstrap CI (default 10)")
    parser.set_defaults(crop_defaults={name: parser.get_default(name) for name in _CROP_ONLY})


_CROP_ONLY = ("calibration", "calibration_split", "calibration_fit", "prior_masks", "robustness", "faithfulness_limit", "top_k", "target_fpr")
_MEDIA_ONLY = ("save_maps", "frames", "fps", "aggregate", "workers", "resume", "ci_min")


def _flags(names: Sequence[str]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in names)


def _run_evaluate(args: argparse.Namespace) -> int:
    if args.media:
        return _run_evaluate_media(args)
    if given := [name for name in _MEDIA_ONLY if getattr(args, name) not in (None, False)]:
        raise ValueError(f"{_flags(given)} apply with --media (a manifest of whole images and videos); add --media or drop them")
    from .evaluation.report import text_summary
    from .evaluation.run import evaluate

    result = evaluate(
        args.manifest, args.out, model=args.model, calibration=args.calibration, prior_masks=args.prior_masks, command=_command_line(),
        split=args.split, calibration_split=args.calibration_split, calibration_fit=args.calibration_fit, threshold=args.threshold, target_fpr=args.target_fpr,
        robustness=args.robustness, faithfulness_limit=args.faithfulness_limit, bootstrap=args.bootstrap, top_k=args.top_k,
        batch_size=args.batch_size, device=args.device, seed=args.seed, progress=False if args.quiet else None,
    )
    if not args.quiet:
        print(text_summary(result.metrics))
        print(f"metrics: {result.metrics_path}\nreport:  {result.report_path.resolve()}")
    return result.exit_code


def _run_evaluate_media(args: argparse.Namespace) -> int:
    if given := [name for name in _CROP_ONLY if getattr(args, name) != args.crop_defaults[name]]:
        raise ValueError(f"{_flags(given)} apply to manifests of face crops, not with --media; drop them")
    from .evaluation.media import evaluate_media
    from .evaluation.media_report import media_text_summary

    options = {name: getattr(args, name) for name in ("save_maps", "frames", "fps", "aggregate", "workers", "ci_min") if getattr(args, name) is not None}
    result = evaluate_media(
        args.manifest, args.out, model=args.model, command=_command_line(), resume=args.resume, split=args.split, threshold=args.threshold,
        bootstrap=args.bootstrap, seed=args.seed, batch_size=args.batch_size, device=args.device, progress=False if args.quiet else None, **options,
    )
    if not args.quiet and result.analysis.rank == 0:
        print(media_text_summary(result.metrics))
        print(f"metrics: {result.metrics_path}\nreport:  {result.report_path.resolve()}\nanalysis: {result.out_dir / 'analysis'}")
    return result.exit_code


def _add_calibrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint folder to calibrate (its config.json is rewritten; with --fit affine its weights too)")
    parser.add_argument("manifest", help="labelled manifest of face crops held out from training")
    parser.add_argument("--target-fpr", type=float, default=0.05, help="false-positive rate the threshold is set to reach (default 0.05)")
    parser.add_argument("--flip-average", choices=("on", "off"), default=None,
                        help="score each crop with its mirror (on) or once (off), and write it into the checkpoint (default: keep its setting)")
    parser.add_argument("--fit", choices=CALIBRATION_FITS, default="temperature",
                        help="fit a temperature T (default), or T and an offset, P(fake) = sigmoid(gap / T + offset), for a model that leans "
                             "towards one class: the offset is folded into the classifier's bias, so the weights are rewritten")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _run_calibrate(args: argparse.Namespace) -> int:
    from .evaluation.calibrate import calibrate

    flip = None if args.flip_average is None else args.flip_average == "on"
    result = calibrate(args.model, args.manifest, target_fpr=args.target_fpr, device=args.device, flip_average=flip, fit=args.fit)
    offset = f", offset {result.offset:+.4f} (folded into the weights)" if args.fit == "affine" else ""
    print(f"temperature {result.temperature:.4f}{offset}{' (at a bound)' if result.at_bound else ''}; NLL {result.nll_before:.4f} -> {result.nll_after:.4f}; "
          f"ECE {result.ece_before:.4f} -> {result.ece_after:.4f}")
    print(f"threshold {result.threshold:.4f}: FPR {result.achieved_fpr:.4f} (target {result.target_fpr}), TPR {result.achieved_tpr:.4f} on {result.samples} crops")
    return 0


def _add_serve(parser: argparse.ArgumentParser) -> None:
    from .service.serve import add_arguments  # cheap: FastAPI/uvicorn load only when serving

    add_arguments(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from .service.serve import run_from_args

    return run_from_args(args)


def _add_features(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image and video files and folders (walked recursively)")
    parser.add_argument("--out", default="out/features.npz", help="features file (.npz, read with allow_pickle=False); its schema goes to <out>.json (default: out/features.npz)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-face-detect", action="store_true", help="use each whole image (or video frame) as one face")
    parser.add_argument("--frames-per-video", type=int, default=32, help="frames sampled uniformly from each video (default 32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_features(args: argparse.Namespace) -> int:
    from .interop.features import write_features

    features, path = write_features(args.inputs, args.out, model=args.model, device=args.device, batch_size=args.batch_size,
                                    face_detect=not args.no_face_detect, frames_per_video=args.frames_per_video,
                                    progress=False if args.quiet else None)
    counts = features.meta["counts"]
    print(f"{counts['faces']} faces from {counts['inputs']} inputs ({counts['ok']} ok, {counts['no_face']} no face, {counts['error']} error)")
    print(f"features: {path}\nschema:   {path}.json")
    return 1 if counts["error"] else 0


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--format", choices=("onnx", "exported-program"), default="onnx",
                        help="onnx (onnxruntime and other runtimes; default) or exported-program (torch.export, .pt2)")
    parser.add_argument("--out", default="out/model", help="file to write; .onnx or .pt2 is added when missing (default: out/model)")
    parser.add_argument("--static-size", action="store_true", help="fix height and width to the checkpoint's input size (default: dynamic)")
    parser.add_argument("--native-maps", action="store_true", help="attention map at the model's native size instead of the input size")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check against the PyTorch model (max |difference| <= 1e-4)")


def _run_export(args: argparse.Namespace) -> int:
    from .interop.export import export

    result = export(args.model, args.out, args.format, dynamic_size=not args.static_size, upsample=not args.native_maps, check=not args.no_check)
    print(f"{result.format}: {result.path} (description: {result.sidecar})")
    if result.parity:
        worst = max(max(p["logits_max_abs"], p["attention_max_abs"]) for p in result.parity)
        print(f"parity with PyTorch on {len(result.parity)} input shapes: max |difference| {worst:.2e}")
    print("Grad-CAM++ needs the PyTorch model (gradients); the exported graph returns logits and the attention map.")
    return 0


def _add_synth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="real face images, videos or folders (walked recursively)")
    parser.add_argument("--out", required=True, help="dataset folder to write: crops/, images/, masks/, manifest.csv, params.jsonl, synth.json")
    parser.add_argument("--per-face", type=int, default=4, help="fakes made from each face (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="every random choice derives from (seed, sample index) (default 0)")
    parser.add_argument("--family", choices=("sbi", "other"), default="sbi",
                        help="sbi: self-blended images, for training (default); other: cross-identity, Poisson blending, "
                             "lower-face/eyes/rectangle masks, JPEG 50-70, for testing generalisation")
    parser.add_argument("--landmarks", action=argparse.BooleanOptionalAction, default=False,
                        help="68-point landmark masks (needs: pip install 'deepfake-attention[landmarks]'); default: face-box shapes")
    parser.add_argument("--frames-per-video", type=int, default=8, help="frames sampled uniformly from each video (default 8)")
    parser.add_argument("--detector", choices=("mtcnn", "haar", "dlib"), default="mtcnn",
                        help="face detector (default mtcnn, as new checkpoints; haar as the first wave's; dlib needs the landmarks extra)")
    parser.add_argument("--crop-scale", type=float, default=1.3, help="square crop side as a multiple of the face box (default 1.3)")
    parser.add_argument("--crop-border", choices=("constant", "replicate", "reflect", "shift"), default="constant",
                        help="a crop past the image border: padded black (default), with its edge or its mirror, or shifted inside (the first wave's)")
    parser.add_argument("--size", type=int, default=None, help="side of the written images in pixels (default: each crop's own size)")
    parser.add_argument("--no-real", action="store_true", help="leave the real crops out of the manifest")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_synth(args: argparse.Namespace) -> int:
    from .data.synth import family_config
    from .data.synth_writer import synthesize

    manifest = synthesize(
        args.inputs, args.out, per_face=args.per_face, seed=args.seed, family=args.family, landmarks=args.landmarks,
        frames_per_video=args.frames_per_video, detector=args.detector, crop_scale=args.crop_scale, crop_border=args.crop_border,
        include_real=not args.no_real, config=family_config(args.family, out_size=args.size), progress=False if args.quiet else None,
    )
    print(f"manifest: {manifest}")
    return 0


def _add_manifest(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="DATASET")
    ffpp = kinds.add_parser("ffpp", help="FaceForensics++ download -> per-video manifest with the official train/val/test splits")
    ffpp.add_argument("root", help="dataset root holding original_sequences/, manipulated_sequences/ and train/val/test.json")
    ffpp.add_argument("--compression", choices=("raw", "c23", "c40"), default="c23", help="video quality to list (default c23)")
    ffpp.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                      help="any of Deepfakes Face2Face FaceSwap NeuralTextures FaceShifter DeepFakeDetection "
                           "(default: every pair method present; DeepFakeDetection rows get no split)")
    ffpp.add_argument("--splits-dir", default=None, help="folder with train.json, val.json, test.json (default: ROOT)")
    celebdf = kinds.add_parser("celebdf", help="Celeb-DF v2 download -> per-video manifest: official test list, train/val by identity")
    celebdf.add_argument("root", help="dataset root holding Celeb-real/, Celeb-synthesis/, YouTube-real/, List_of_testing_videos.txt")
    celebdf.add_argument("--val-fraction", type=float, default=0.1, help="share of the non-test videos for val (default 0.1)")
    celebdf.add_argument("--seed", type=int, default=0, help="seed of the train/val identity split (default 0)")
    celebdf.add_argument("--linked", choices=("target", "drop"), default="target",
                         help="target: a swap idX_idY follows idX (default); drop: identity-disjoint train/val, cross-split swaps left out")
    celebdf.add_argument("--disjoint-identities", action="store_true", help="leave out train/val videos sharing an identity with the test list")
    folder = kinds.add_parser("folder", help="real/ + fake/ folders (masks/ beside fake/) -> manifest with empty splits")
    folder.add_argument("root", help="folder holding real/ and fake/ (walked recursively) and optionally masks/")
    folder.add_argument("--videos", action="store_true", help="list video files too (default: images only)")
    for child in (ffpp, celebdf, folder):
        child.add_argument("--out", required=True, help="manifest CSV to write (paths under its folder are stored relative)")


def _run_manifest(args: argparse.Namespace) -> int:
    from .data.manifest import format_summary
    from .data.protocols import build_manifest

    options = {k: v for k, v in vars(args).items() if k not in {"command", "kind", "root", "out", "run"}}
    rows = build_manifest(args.kind, args.root, args.out, **options)
    print(format_summary(rows))
    print(f"{len(rows)} rows written to {args.out}")
    return 0


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TOML config file (sections model, data, optim, loss, run)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=3e-4 (repeatable; values are TOML literals)")
    parser.add_argument("--out", default=None, help="run folder (same as --set run.out=...)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint, exactly")


def _run_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    overrides = list(args.overrides) + ([f"run.out={json.dumps(args.out)}"] if args.out else [])
    from .train.distributed import is_main

    result = train(load_config(args.config, overrides), resume=args.resume)
    if is_main():
        state = "paused" if result.paused else "stopped early" if result.stopped_early else "finished"
        print(f"training {state} at step {result.step}; model: {result.model_dir}")
    return 0


def _print_table(summary) -> None:  # noqa: ANN001 - RunSummary, imported lazily
    if summary.untrained:
        print("WARNING: UNTRAINED placeholder model - every score is meaningless.")
    width = max([len(row.path) for row in summary.rows[:50]] + [4])
    print(f"{'path':<{width}}  {'status':<7}  {'P(fake)':>7}  label")
    for row in summary.rows[:50]:
        prob = "" if row.prob_fake is None else f"{row.prob_fake:.3f}"
        print(f"{row.path:<{width}}  {row.status:<7}  {prob:>7}  {row.label or row.error or ''}")
    if len(summary.rows) > 50:
        print(f"... {len(summary.rows) - 50} more rows in {summary.out_dir / 'results.csv'}")
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    print(f"{len(summary.rows)} inputs: {counts}. Results in {summary.out_dir}")


def _command_line() -> str:
    return "deepfake-attention " + " ".join(shlex.quote(a) for a in sys.argv[1:])


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "analyze": ("score images, write maps, result rows and a report", _add_analyze, _run_analyze),
    "demo": ("analyze bundled sample input with the shipped model", _add_demo, _run_demo),
    "synth": ("make self-blended (or cross-identity) forgeries with exact masks from real faces", _add_synth, _run_synth),
    "train": ("train a detector (CE + attention-aware losses) from a TOML config", _add_train, _run_train),
    "evaluate": ("evaluate a detector on a labelled manifest: metrics.json and an HTML report", _add_evaluate, _run_evaluate),
    "calibrate": ("fit a checkpoint's temperature and threshold on a held-out manifest", _add_calibrate, _run_calibrate),
    "serve": ("the web service and analyst page: HTTP API on uvicorn (needs the 'serve' extra)", _add_serve, _run_serve),
    "features": ("write per-face 512-d features, calibrated scores, attention maps and boxes (.npz) for other detectors", _add_features, _run_features),
    "export": ("export the detector to ONNX or a torch.export program (logits + attention map), with a parity check", _add_export, _run_export),
    "manifest": ("build a dataset manifest (CSV) from FaceForensics++, Celeb-DF v2 or real/ + fake/ folders", _add_manifest, _run_manifest),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per entry of :data:`COMMANDS`."""
    from .version import __version__

    parser = argparse.ArgumentParser(prog="deepfake-attention", description="Explainable deepfake detection with attention maps and Grad-CAM++.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add, run) in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        add(child)
        child.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepfake-attention`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"deepfake-attention {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
