"""Ablations of the default recipe: the seed's enhancements, and the recipe's own choices.

Two groups of arms (``--arms variants``, the default, or ``--arms recipe``, or any list of names):

* ``variants``: seed vs +channel vs +multi-scale vs both (the seed's "future enhancements").
* ``recipe``: the default recipe (``seed``; v4 since it took the winning arm of the v3 table) against
  one change each: no real/blend pairing in a batch, files weighted instead of people, no JPEG /
  down-sampling, no colour / blur / noise jitter, the affine jitter of the crops (``affine``), crops turned level on the five landmarks (its own
  prepared data), the shallower stride-8 trunk cut, the deeper dilated cut (320 channels, still 14x14), a larger input (288 pixels), and ``v3``: the
  previous recipe (stride 8, JPEG 30-100 on 70% of the images, down-sampling to a quarter on 40%).

Every arm trains the default recipe (``configs/default_model.toml``: the seed block on the
MobileNetV2 trunk, self-blended fakes made on the fly) for the same number of steps per seed, is
calibrated on the recipe's calibration people, then scored on the same held-out sets: the test people's
self-blends (``test_sbi``) and the differently made family (``test_other``). One table: AUC, EER,
attention pixel-AUC and pointing game against the forgery masks (Grad-CAM++ and the attention
gate), Average Drop, parameter count and images/s, each metric with a 95% CI from a two-level
bootstrap (seeds resampled, then test faces resampled within each class; the estimate is the
mean over seeds). Data come from ``recipe.run.prepare`` (or an existing prepared folder).

    python bench/ablation.py --data ../shared/data --work runs/ablation                   # 4 arms x 3 seeds, 150 steps
    python bench/ablation.py --prepared runs/default-model/data --work runs/recipe-arms --arms recipe --seeds 1 --steps 400
    python bench/ablation.py --prepared runs/default-model/data --work runs/ablation --minutes 15
    python bench/ablation.py --data ../shared/data --work runs/ablation-smoke --arms seed,both --seeds 1 --steps 2 \\
        --limit 20 --frames-per-video 2 --no-landmarks --set data.size=64 --set data.batch_size=8   # smoke

Runs already finished in ``--work`` are reused (delete a run folder to redo it). Writes
``ablation.json`` (per-seed numbers, CIs, settings) and ``ablation.md`` (the table) into ``--work``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from deepfake_attention import Detector, GradCAMPlusPlus
from deepfake_attention.data.datasets import read_mask
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.data.media import read_image
from deepfake_attention.detector import fake_minus_real
from deepfake_attention.device import resolve_device
from deepfake_attention.evaluation.calibrate import calibrate
from deepfake_attention.evaluation.run import evaluate
from deepfake_attention.evaluation.sections import batches, predict_probs
from deepfake_attention.metrics import auc_roc, equal_error_rate, explanation_images, localization_scores
from deepfake_attention.recipe.run import CONFIG, prepare, read_prepared
from deepfake_attention.train import load_config, train

from _timing import Stats, Verdict, add_arguments, legend, load_line, measure

VARIANT_ARMS = {
    "seed": [],
    "channel": ["model.channel_attention='se'"],
    "multiscale": ["model.attention_scales=[1, 2, 4]"],
    "both": ["model.channel_attention='se'", "model.attention_scales=[1, 2, 4]"],
}
RECIPE_ARMS = {
    "unpaired": ["data.paired=false"],
    "file-weights": ["data.weighting='none'"],
    "no-compression": ["synth.jpeg_prob=0.0", "synth.downscale_prob=0.0"],
    "no-jitter": ["data.colour_jitter=false"],
    "affine": ["data.affine_prob=0.5"],
    "aligned": [],
    "trunk-s8": ["model.trunk='mobilenet_v2_s8'"],
    "trunk-d16": ["model.trunk='mobilenet_v2_d16'"],
    "input-288": ["data.size=288"],
    "v3": ["model.trunk='mobilenet_v2_s8'", "synth.jpeg_prob=0.7", "synth.downscale_prob=0.4", "synth.downscale_range=[0.25, 1.0]"],
}
ARMS = {**VARIANT_ARMS, **RECIPE_ARMS}
GROUPS = {"variants": list(VARIANT_ARMS), "recipe": ["seed", *RECIPE_ARMS]}
ALIGNED = {"aligned"}
"""Arms trained and scored on crops turned level on the five landmarks (``prepare(align=True)``, in ``--work``/data-aligned)."""
TESTS = ("test_sbi", "test_other")
MAPS = ("gradcampp", "attention")
COLUMNS = ["auc", "eer", "fpr", "pixel_auc/gradcampp", "pointing/gradcampp", "pixel_auc/attention", "pointing/attention", "average_drop/gradcampp"]


def prepared_paths(folder: Path) -> dict[str, Path]:
    """The paths ``prepare`` wrote for a folder it already filled (raises when it did not)."""
    paths = {name: Path(path) for name, path in read_prepared(folder)["paths"].items()}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete prepared data folder; missing {missing}")
    return paths


def seconds_per_step(cfg) -> float:  # noqa: ANN001 - TrainConfig
    """Median seconds of a training step (data, forward, backward, AdamW) over 3 steps after one warm-up step."""
    from deepfake_attention.train.data import build_datasets
    from deepfake_attention.train.loop import build_model
    from deepfake_attention.train.losses import training_losses

    train_set, _ = build_datasets(cfg)
    device = resolve_device(cfg.run.device)
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    steps = iter(range(1_000_000))

    def step() -> None:
        index = next(steps)
        items = [train_set[(index * cfg.data.batch_size + k) % len(train_set)] for k in range(cfg.data.batch_size)]
        batch = torch.utils.data.default_collate(items)
        out = model(batch["image"].to(device))
        terms = training_losses(out["output"], out["attention_weights"], batch["label"].to(device), batch["mask"].to(device), batch["has_mask"].to(device), cfg.loss)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return measure({"step": step}, repeats=3, warmup=1, sync=sync)["step"].median


def score_run(detector: Detector, rows: list, batch_size: int) -> dict[str, np.ndarray]:
    """Per test face: label, calibrated P(fake), and per map pixel-AUC, pointing game (fakes with a
    mask, else NaN) and Average Drop % (correctly classified fakes, else NaN)."""
    size, threshold = detector.config.preprocess.size, detector.threshold
    got: dict[str, list] = {"y": [], "p": [], **{f"{m}/{k}": [] for m in MAPS for k in ("pixel_auc", "pointing", "drop")}}
    for chunk in batches(rows, batch_size):
        images = [read_image(row.path) for row in chunk]
        preds = detector.predict(images, cam=True)
        y = np.array([int(row.is_fake) for row in chunk])
        p = np.array([pred.prob_fake for pred in preds])
        crops = np.stack([pred.crop for pred in preds])
        maps = {"gradcampp": np.stack([pred.gradcampp for pred in preds]), "attention": np.stack([pred.attention for pred in preds])}
        masked = [k for k, row in enumerate(chunk) if row.is_fake and row.mask]
        correct = np.flatnonzero((y == 1) & (p >= threshold))
        for name, values in maps.items():
            pix, hit, drop = np.full(len(chunk), np.nan), np.full(len(chunk), np.nan), np.full(len(chunk), np.nan)
            if masked:
                soft = np.stack([read_mask(chunk[k].mask, size, images[k].shape[:2]) for k in masked]) / 255.0
                scores = localization_scores(values[masked].astype(np.float64), soft)
                pix[masked], hit[masked] = scores["pixel_auc"], scores["pointing_game"]
            if correct.size:
                explained = predict_probs(detector, explanation_images(crops[correct], values[correct]), batch_size)
                drop[correct] = 100.0 * np.maximum(0.0, p[correct] - explained) / p[correct]
            got[f"{name}/pixel_auc"] += pix.tolist()
            got[f"{name}/pointing"] += hit.tolist()
            got[f"{name}/drop"] += drop.tolist()
        got["y"] += y.tolist()
        got["p"] += p.tolist()
    scores = {key: np.asarray(values, dtype=np.int64 if key == "y" else np.float64) for key, values in got.items()}
    scores["threshold"] = np.float64(threshold)
    return scores


COLUMN_KEYS = {"pixel_auc/gradcampp": "gradcampp/pixel_auc", "pointing/gradcampp": "gradcampp/pointing", "pixel_auc/attention": "attention/pixel_auc",
               "pointing/attention": "attention/pointing", "average_drop/gradcampp": "gradcampp/drop"}


def metric(column: str, s: dict[str, np.ndarray], idx: np.ndarray) -> float:
    """One table column on the faces ``idx`` of one run's scores ``s`` (NaN when undefined there)."""
    y, p = s["y"][idx], s["p"][idx]
    if column == "fpr":  # scores written before the column existed have no threshold
        return float(np.mean(p[y == 0] >= float(s["threshold"]))) if "threshold" in s and (y == 0).any() else float("nan")
    if column in ("auc", "eer"):
        if y.min() == y.max():
            return float("nan")
        return auc_roc(y, p) if column == "auc" else equal_error_rate(y, p).eer
    values = s[COLUMN_KEYS[column]][idx]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def percentile_ci(stats: list[float]) -> tuple[float, float]:
    """The 95% percentile interval of the finite bootstrap replicates (NaN, NaN when none is finite)."""
    values = np.asarray(stats, dtype=np.float64)
    values = values[np.isfinite(values)]
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if values.size else (float("nan"), float("nan"))


def resample_within_classes(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap replicate: each class's indexes drawn with replacement, as many as it has."""
    return np.concatenate([g[rng.integers(0, g.size, size=g.size)] for g in groups])


def two_level_ci(runs: list[dict[str, np.ndarray]], column: str, n: int, seed: int) -> dict[str, float]:
    """Mean over seeds of ``column``, and the 95% percentile CI of a bootstrap that resamples the
    seeds and, per replicate, the test faces within each class (the same faces for every seed)."""
    everyone = np.arange(runs[0]["y"].size)
    estimate = float(np.mean([metric(column, r, everyone) for r in runs]))
    groups = [np.flatnonzero(runs[0]["y"] == c) for c in (0, 1)]
    stats = []
    for b in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
        picked = rng.integers(0, len(runs), size=len(runs))
        idx = resample_within_classes(groups, rng)
        stats.append(np.mean([metric(column, runs[k], idx) for k in picked]))
    low, high = percentile_ci(stats)
    return {"estimate": estimate, "low": float(low), "high": float(high), "per_seed": [metric(column, r, everyone) for r in runs]}


def paired_difference(runs: list[dict[str, np.ndarray]], base: list[dict[str, np.ndarray]], column: str, n: int, seed: int) -> dict[str, float]:
    """``column`` of an arm minus the same column of the ``seed`` arm, scored on the same test faces:
    mean over each arm's seeds, with the 95% CI of a bootstrap that resamples the faces within each
    class once per replicate for both arms (so their shared difficulty cancels) and each arm's seeds."""
    if any(r["y"].shape != base[0]["y"].shape or not np.array_equal(r["y"], base[0]["y"]) for r in runs):
        raise ValueError("paired differences need the same test faces in the same order")
    everyone = np.arange(base[0]["y"].size)
    estimate = float(np.mean([metric(column, r, everyone) for r in runs]) - np.mean([metric(column, r, everyone) for r in base]))
    groups = [np.flatnonzero(base[0]["y"] == c) for c in (0, 1)]
    stats = []
    for b in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
        idx = resample_within_classes(groups, rng)
        ours, theirs = rng.integers(0, len(runs), size=len(runs)), rng.integers(0, len(base), size=len(base))
        stats.append(np.mean([metric(column, runs[k], idx) for k in ours]) - np.mean([metric(column, base[k], idx) for k in theirs]))
    low, high = percentile_ci(stats)
    return {"estimate": estimate, "low": float(low), "high": float(high)}


def throughput(detectors: dict[str, Detector], batch: int, verdict: Verdict, repeats: int = 7, warmup: int = 1) -> dict[str, dict[str, Stats]]:
    """Images/s per arm of the forward (inference mode) and of forward + Grad-CAM++: ``repeats``
    rounds after a warm-up round, all arms interleaved so that load drift hits them alike; the
    paired ratio (forward + Grad-CAM++) / forward of each arm goes to ``verdict``."""
    fns = {}
    sync = None
    for arm, detector in detectors.items():
        size = detector.config.preprocess.size
        x = torch.randn(batch, 3, size, size, device=detector.device).contiguous(memory_format=torch.channels_last)
        cam = GradCAMPlusPlus(detector.model, detector.config.target_layer)
        sync = torch.cuda.synchronize if detector.device.type == "cuda" else sync

        def forward(model: torch.nn.Module = detector.model, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        fns[f"{arm}/forward"] = forward
        fns[f"{arm}/gradcampp"] = lambda cam=cam, x=x: cam.compute(x, score_fn=fake_minus_real) is None
    t = measure(fns, repeats=repeats, warmup=warmup, sync=sync)
    for arm in detectors:
        verdict.ratio(f"{arm}: (forward + Grad-CAM++) / forward", t.ratio(f"{arm}/gradcampp", f"{arm}/forward"), at_least=1.0,
                      why="forward + Grad-CAM++ cannot be faster than the forward it contains")
    return {arm: {kind: t.rate(f"{arm}/{kind}", batch) for kind in ("forward", "gradcampp")} for arm in detectors}


def run_arm_seed(arm: str, seed: int, paths: dict[str, Path], work: Path, args: argparse.Namespace, steps: int) -> dict:
    """Train (unless done), calibrate and score one seed of one arm; returns the run's record."""
    folder = work / arm / f"seed-{seed}"
    record_path = folder / "record.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["requested_steps"] != steps:
            raise SystemExit(f"{folder} was trained for {record['requested_steps']} steps, not {steps}: delete it or use another --work")
        return record
    config_path = Path(str(resources.files("deepfake_attention.configs") / CONFIG))
    overrides = [f"run.out={json.dumps(str(folder / 'train'))}", f"run.seed={seed}", f"run.device={json.dumps(args.device)}",
                 f"data.real_faces={json.dumps([str(paths['faces_train'])])}", f"data.val={json.dumps([str(paths['calibration'])])}",
                 f"optim.max_steps={steps}", "run.tensorboard=false", *ARMS[arm], *args.overrides]
    started = time.perf_counter()
    result = train(load_config(config_path, overrides))
    minutes = (time.perf_counter() - started) / 60
    calibration = calibrate(result.model_dir, paths["calibration"], device=args.device)
    detector = Detector.load(result.model_dir, device=args.device)
    record = {"arm": arm, "seed": seed, "requested_steps": steps, "steps": result.step, "train_minutes": minutes, "model_dir": str(result.model_dir),
              "temperature": calibration.temperature, "threshold": calibration.threshold, "scores": {}, "evaluate": {}}
    for test in TESTS:
        rows = read_manifest(paths[test])
        scores = score_run(detector, rows, args.batch_size)
        np.savez(folder / f"scores-{test}.npz", **scores)
        record["scores"][test] = str(folder / f"scores-{test}.npz")
        if args.reports:
            metrics = evaluate(rows, folder / f"eval-{test}", model=detector, prior_masks=paths["prior_masks"], bootstrap=0,
                               faithfulness_limit=0, batch_size=args.batch_size, progress=False, command="bench/ablation.py").metrics
            record["evaluate"][test] = {"auc": metrics["classification"]["auc_roc"], "eer": metrics["classification"]["eer"],
                                        "average_drop/gradcampp": metrics["faithfulness"]["gradcampp"]["average_drop"]}
    record["parameters"] = sum(p.numel() for p in detector.model.parameters())
    record["device"] = str(detector.device)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def fmt(ci: dict[str, float]) -> str:
    return "n/a" if math.isnan(ci["estimate"]) else f"{ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding real-faces/ and real-videos/ (for prepare)")
    parser.add_argument("--prepared", type=Path, default=None, help="reuse a folder prepare() already filled (e.g. runs/default-model/data)")
    parser.add_argument("--work", type=Path, default=Path("runs/ablation"), help="output folder (runs, ablation.json, ablation.md)")
    parser.add_argument("--arms", default="variants",
                        help=f"comma-separated arms out of {','.join(ARMS)}, or a group: {', '.join(f'{k} ({v})' for k, v in GROUPS.items())}; default variants")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (0, 1, ..., N-1; default 3)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run (default 150)")
    parser.add_argument("--minutes", type=float, default=None, help="instead of --steps: a time budget per run; steps from a timed probe of the slowest arm")
    parser.add_argument("--batch-size", type=int, default=32, help="scoring batch size (training: data.batch_size of the config)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per CI (default 1000)")
    parser.add_argument("--reports", action=argparse.BooleanOptionalAction, default=True, help="also run evaluate() per run (metrics.json, report.html)")
    parser.add_argument("--frames-per-video", type=int, default=8, help="frames sampled from each video by prepare (default 8)")
    parser.add_argument("--limit", type=int, default=None, help="prepare only the first N corpus files (smoke runs)")
    parser.add_argument("--landmarks", action=argparse.BooleanOptionalAction, default=True, help="68-point landmark masks (default on)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the training config of every arm")
    add_arguments(parser, repeats=7, warmup=1)  # for the images/s columns
    args = parser.parse_args()
    arms = [name for a in args.arms.split(",") if a.strip() for name in GROUPS.get(a.strip(), [a.strip()])]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms or args.seeds < 1:
        parser.error(f"--arms must name some of {list(ARMS)} or a group of {list(GROUPS)} (got {unknown or arms}) and --seeds must be >= 1")
    args.work.mkdir(parents=True, exist_ok=True)
    base = load_config(Path(str(resources.files("deepfake_attention.configs") / CONFIG)), args.overrides)

    def prepared(folder: Path, align: bool) -> dict[str, Path]:
        try:
            return prepared_paths(folder)
        except FileNotFoundError:
            prepare(args.data, folder, detector=base.data.detector, crop_scale=base.data.crop_scale, crop_border=base.data.crop_border,
                    frames_per_video=args.frames_per_video, landmarks=args.landmarks, limit=args.limit, align=align)
            return prepared_paths(folder)

    plain = prepared_paths(args.prepared) if args.prepared else None
    if plain is None and any(arm not in ALIGNED for arm in arms):
        plain = prepared(args.work / "data", align=False)
    aligned = prepared(args.work / "data-aligned", align=True) if any(arm in ALIGNED for arm in arms) else None
    arm_paths = {arm: aligned if arm in ALIGNED else plain for arm in arms}
    steps = args.steps
    if args.minutes is not None:
        slowest = "both" if "both" in arms else "input-288" if "input-288" in arms else arms[-1]
        cfg = load_config(Path(str(resources.files("deepfake_attention.configs") / CONFIG)), [
            f"data.real_faces={json.dumps([str(arm_paths[slowest]['faces_train'])])}", f"run.device={json.dumps(args.device)}", *ARMS[slowest], *args.overrides])
        per_step = seconds_per_step(cfg)
        steps = max(1, int(0.9 * args.minutes * 60 / per_step))
        print(f"{per_step:.2f} s per step ({slowest}); {steps} steps per run fit {args.minutes} minutes (90%, validation not counted)")
    records = {arm: [run_arm_seed(arm, seed, arm_paths[arm], args.work, args, steps) for seed in range(args.seeds)] for arm in arms}
    differences = [abs(value - metric(column, dict(np.load(r["scores"][test])), np.arange(len(np.load(r["scores"][test])["y"]))))
                   for runs in records.values() for r in runs for test, numbers in r["evaluate"].items()
                   for column, value in numbers.items() if value is not None]
    if differences:
        print(f"cross-check with evaluate()'s metrics.json: largest |difference| over {len(differences)} numbers = {max(differences):.2e}")
    verdict = Verdict()
    speed = throughput({arm: Detector.load(records[arm][0]["model_dir"], device=args.device) for arm in arms}, args.batch_size, verdict,
                       repeats=args.repeats, warmup=args.warmup_rounds)
    table, results = [], {}
    for arm in arms:
        for test in TESTS:
            runs = [dict(np.load(r["scores"][test])) for r in records[arm]]
            cis = {column: two_level_ci(runs, column, args.bootstrap, seed=0) for column in COLUMNS}
            results[f"{arm}/{test}"] = cis
            first = records[arm][0]
            table.append([arm, test, *(fmt(cis[c]) for c in COLUMNS), f"{first['parameters']:,}",
                          speed[arm]["forward"].show(1), speed[arm]["gradcampp"].show(1)])
    header = ["arm", "test", *COLUMNS, "params", "img/s", "img/s +G++"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |" for row in table]
    paired = [arm for arm in arms if arm != "seed" and arm not in ALIGNED] if "seed" in arms else []
    if paired:  # on the same faces: the shared difficulty of the test set cancels, so these CIs are narrower than the table's
        lines += ["", "| arm | test | AUC - seed's [paired 95% CI] |", "|---|---|---|"]
        for arm in paired:
            for test in TESTS:
                runs, base_runs = ([dict(np.load(r["scores"][test])) for r in records[name]] for name in (arm, "seed"))
                results[f"{arm}/{test}"]["auc_minus_seed"] = difference = paired_difference(runs, base_runs, "auc", args.bootstrap, seed=0)
                lines.append(f"| {arm} | {test} | {difference['estimate']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}] |")
    note = (f"{args.seeds} seed(s) per arm, {steps} steps each, {args.bootstrap} two-level bootstrap replicates (95% CI); "
            f"pixel-AUC / pointing game against the soft masks (M >= 0.5) of the held-out fakes; Average Drop % over correctly classified fakes; "
            f"images/s at batch {args.batch_size} on {records[arms[0]][0]['device']}: {legend(args.repeats, args.warmup_rounds)}.")
    (args.work / "ablation.md").write_text("\n".join(lines) + "\n\n" + note + "\n")
    (args.work / "ablation.json").write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "steps": steps,
                                                         "results": results,
                                                         "images_per_s": {arm: {kind: v.median for kind, v in kinds.items()} for arm, kinds in speed.items()},
                                                         "images_per_s_rounds": {arm: {kind: list(v.values) for kind, v in kinds.items()} for arm, kinds in speed.items()},
                                                         "runs": records}, indent=2))
    print("\n".join(lines) + "\n\n" + note)
    print(f"\nwritten: {args.work / 'ablation.md'} and {args.work / 'ablation.json'}")
    return verdict.report(args.strict, load=load_line("after the throughput rounds"))


if __name__ == "__main__":
    sys.exit(main())
