"""Generator-fingerprint fakes: do they teach the detector generated faces, with no generated face?

Three arms, each ``--seeds`` seeds on a short fixed schedule (``--steps``):

* ``blends``: the default recipe, self-blends only (it never sees a fingerprint).
* ``fingerprints``: + fingerprint fakes (``synth.fingerprint_prob``) from the decoders of three
  up-sampling kinds; fold ``k`` holds out kind ``UPSAMPLERS[k]`` (all its seeds).
* ``frequency``: ``fingerprints`` + the high-pass stem beside the trunk (``model.frequency_input``).
* ``light``: ``fingerprints`` on a quarter of the fakes instead of half, and the softened reals
  (blur, or down-up resampling) down to a quarter of their size instead of a half: does the
  blend detection cost shrink, and do small enlarged faces stop looking like a decoder's output?

The latent autoencoder (``--latent``, the shared TAEF2 files) is held out everywhere unless
``--train-latent``. Test sets, written once under ``--work/sets`` from the test people of a
recipe's prepared folder: the recipe's self-blends and other family, one fingerprint set per
up-sampling kind (each face through one of that kind's decoders) and one of the latent
autoencoder. Every run is calibrated as the recipe does (temperature; threshold at 5% false
positives over the calibration people's units) and scored per unit (one score per person per file):
AUC of the test reals against each set, and the reals' false-positive rate per source group. For
Grad-CAM++ the spread of the map over the face is measured on ``--cam-faces`` fakes of each set:
the share of maps the words call spread (no region above 1.5x its area share) and the mean
largest coarse-region share; ``cam.png`` in the run's folder shows a few of those maps per set.

    python -m deepfake_attention.data.generators --faces runs/default-model/data/faces-train \\
        --heldout runs/default-model/data/faces-calibration --out runs/fingerprint-decoders
    python bench/fingerprints.py --prepared runs/default-model/data --decoders runs/fingerprint-decoders \\
        --latent ../shared/data/generators/taef2_encoder.pth ../shared/data/generators/taef2_decoder.pth \\
        --work runs/fingerprints --steps 300 --seeds 3

Each finished run leaves a small JSON record in ``--records`` (default ``bench/results/fingerprints``,
committed with the code: run folders under ``--work`` do not outlive a checkout); a run whose record
exists is not trained again (delete the record to redo it), one interrupted (e.g. by the end of a
session) continues from its newest checkpoint, so the table fills over several
sessions, a slice at a time (``--arms``, ``--folds``, ``--max-runs``). ``--rotate-seeds`` trains each
held-out fold once, with seed ``fold % seeds``: every kind held out, every seed used, 4 runs per arm
instead of 12. ``--table`` trains nothing and prints the table of the records. Writes
``fingerprints.json`` and ``fingerprints.md`` into ``--work``.

    python bench/fingerprints.py --prepared runs/recipe-arms/data --decoders src/deepfake_attention/weights/fingerprints \\
        --latent ../shared/data/generators/taef2_encoder.pth ../shared/data/generators/taef2_decoder.pth \\
        --steps 300 --seeds 3 --rotate-seeds --max-runs 5          # one session's slice
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deepfake_attention import Detector
from deepfake_attention.data.face_records import read_faces
from deepfake_attention.data.generators.family import FingerprintBank
from deepfake_attention.data.generators.nets import UPSAMPLERS
from deepfake_attention.data.generators.store import decoder_kind, list_decoders
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.data.media import read_image
from deepfake_attention.data.synth import family_config
from deepfake_attention.data.synth_writer import write_fakes
from deepfake_attention.evaluation.calibrate import calibrate
from deepfake_attention.explain.render import overlay, stack_rows
from deepfake_attention.explain.words import describe_map
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.run import CONFIG, TARGET_FPR, read_prepared, set_threshold
from deepfake_attention.recipe.units import crop_stem, score_units, unit_report, unit_threshold
from deepfake_attention.train import load_config, train
from deepfake_attention.train.checkpoint import latest_checkpoint

ARMS = ("blends", "fingerprints", "frequency", "light")
LIGHT = ["synth.fingerprint_prob=0.25", "synth.fingerprint_softest=0.25"]
"""The ``light`` arm: fingerprints on a quarter of the fakes, and the softened reals down to a quarter of their size."""
SET_SEED = 5005


def write_sets(prepared: Path, decoders: Path, latent: tuple[str, str] | None, out: Path) -> dict[str, Path]:
    """The recipe's two test manifests and one fingerprint manifest per up-sampling kind (and the latent autoencoder)."""
    paths = {name: Path(path) for name, path in read_prepared(prepared)["paths"].items()}
    sets = {"test_sbi": paths["test_sbi"], "test_other": paths["test_other"]}
    faces = read_faces(prepared / "faces-test")
    names = list_decoders(decoders)
    banks = {f"fp_{kind}": [n for n in names if decoder_kind(n) == kind] for kind in UPSAMPLERS}
    for offset, (set_name, members) in enumerate(banks.items()):
        if not members:
            raise SystemExit(f"{decoders} has no decoder of kind {set_name[3:]}: train them first (python -m deepfake_attention.data.generators)")
        sets[set_name] = _fingerprint_set(faces, out / set_name, FingerprintBank.load(decoders, names=members), SET_SEED + offset)
    if latent is not None:
        sets["fp_latent"] = _fingerprint_set(faces, out / "fp_latent", FingerprintBank.load(None, names=[], latent=latent), SET_SEED + 10)
    return sets


def _fingerprint_set(faces: list, folder: Path, bank: FingerprintBank, seed: int) -> Path:
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        write_fakes(faces, folder, per_face=1, seed=seed, family="fingerprint", config=family_config("fingerprint"), bank=bank)
    return manifest


def overrides_for(arm: str, fold: int | None, seed: int, args: argparse.Namespace, paths: dict[str, Path], folder: Path) -> list[str]:
    """The training config of one run."""
    out = [f"run.out={json.dumps(str(folder / 'train'))}", f"run.seed={seed}", f"data.real_faces={json.dumps([str(paths['faces_train'])])}",
           f"data.val={json.dumps([str(paths['calibration'])])}", f"optim.max_steps={args.steps}", "run.tensorboard=false", *args.overrides]
    if arm == "blends":
        return out
    kinds = [k for k in UPSAMPLERS if k != UPSAMPLERS[fold]]
    out += [f"synth.fingerprint_prob={args.fingerprint_prob}", f"synth.fingerprint_decoders={json.dumps(str(args.decoders))}",
            f"synth.fingerprint_kinds={json.dumps(kinds)}"]
    if args.train_latent and args.latent:
        out.append(f"synth.fingerprint_latent={json.dumps([str(p) for p in args.latent])}")
    if arm == "frequency":
        out.append("model.frequency_input='highpass'")
    if arm == "light":
        out += LIGHT  # after --fingerprint-prob: these win
    return out


FIGURE_FACES = 4
FIGURE_TILE = 128


def cam_spread(detector: Detector, manifest: Path, faces_by_stem: dict[str, dict], limit: int) -> tuple[dict[str, float], list[np.ndarray]]:
    """Over the first ``limit`` fakes of ``manifest``: the share of Grad-CAM++ maps the words call
    spread, and the mean largest coarse-region share (landmarks of the source face when known);
    with the first :data:`FIGURE_FACES` crops overlaid with their map (opacity x P(fake)) for the figure."""
    rows = [row for row in read_manifest(manifest) if row.is_fake][:limit]
    spread, largest, tiles = [], [], []
    for row in rows:
        image = read_image(row.path)
        pred = detector.predict([image], cam=True)[0]
        points = faces_by_stem.get(crop_stem(row.path), {}).get("landmarks")
        words = describe_map(pred.gradcampp, landmarks=None if points is None else np.asarray(points), frame=image.shape[:2])
        spread.append(not words.named and sum(words.shares.values()) > 0)  # an empty map is not spread evidence
        largest.append(max(words.shares.values()))
        if len(tiles) < FIGURE_FACES:
            crop = np.asarray(Image.fromarray(pred.crop).resize((FIGURE_TILE, FIGURE_TILE), Image.BILINEAR))
            tiles.append(overlay(crop, pred.gradcampp, float(pred.prob_fake)))
    return {"spread": float(np.mean(spread)), "largest_share": float(np.mean(largest)), "maps": len(rows)}, tiles


def cam_figure(tiles: dict[str, list[np.ndarray]], spread: dict[str, dict[str, float]], title: str) -> Image.Image:
    """One row per test set: its name and spread share, then its fakes with their Grad-CAM++ overlay."""
    label_width, head = 190, 24
    rows = []
    for name, images in tiles.items():
        row = Image.new("RGB", (label_width + FIGURE_TILE * FIGURE_FACES, FIGURE_TILE), (255, 255, 255))
        draw = ImageDraw.Draw(row)
        draw.text((4, 40), name, fill=(0, 0, 0))
        draw.text((4, 60), f"spread maps: {spread[name]['spread']:.2f}", fill=(60, 60, 60))
        draw.text((4, 76), f"largest region: {spread[name]['largest_share']:.2f}", fill=(60, 60, 60))
        for k, image in enumerate(images):
            row.paste(Image.fromarray(image), (label_width + k * FIGURE_TILE, 0))
        rows.append(row)
    caption = Image.new("RGB", (rows[0].width, head), (255, 255, 255))
    ImageDraw.Draw(caption).text((4, 6), f"{title}: Grad-CAM++ x P(fake) on the test people's fakes", fill=(0, 0, 0))
    return stack_rows([caption, *rows])


def run_name(arm: str, fold: int | None, seed: int) -> str:
    """The name of one run: its folder under ``--work`` and its record's file name in ``--records``."""
    return f"{arm}-seed-{seed}" if fold is None else f"{arm}-fold-{UPSAMPLERS[fold]}-seed-{seed}"


def planned_runs(arms: list[str], folds: list[int], seeds: int, rotate: bool) -> list[tuple[str, int | None, int]]:
    """(arm, fold, seed) of every run: ``blends`` once per seed (it has no fold); the other arms per
    fold and seed, or with ``rotate`` once per fold with seed ``fold % seeds``."""
    plan: list[tuple[str, int | None, int]] = []
    for arm in arms:
        if arm == "blends":
            plan += [(arm, None, seed) for seed in range(seeds)]
        else:
            plan += [(arm, fold, seed) for fold in folds for seed in ([fold % seeds] if rotate else range(seeds))]
    return plan


def read_record(path: Path, steps: int) -> dict | None:
    """A finished run's record, or ``None`` when there is none; a record of another schedule stops the bench."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record["requested_steps"] != steps:
        raise SystemExit(f"{path} was trained for {record['requested_steps']} steps, not {steps}: delete it or use another --records")
    return record


def run_one(arm: str, fold: int | None, seed: int, args: argparse.Namespace, paths: dict[str, Path], sets: dict[str, Path],
            faces: list[FaceInfo], faces_by_stem: dict[str, dict]) -> dict:
    """Train, calibrate and score one run, and write its record into ``--records``."""
    folder = args.work / run_name(arm, fold, seed)
    record_path = args.records / f"{run_name(arm, fold, seed)}.json"
    config_path = Path(str(resources.files("deepfake_attention.configs") / CONFIG))
    resumed = latest_checkpoint(folder / "train") is not None  # a run interrupted (e.g. by the end of a session) continues exactly
    result = train(load_config(config_path, overrides_for(arm, fold, seed, args, paths, folder)), resume=resumed)  # its log.csv has the seconds
    calibrate(result.model_dir, paths["calibration"], target_fpr=TARGET_FPR)
    detector = Detector.load(result.model_dir)
    threshold = unit_threshold(score_units(detector, paths["calibration"], faces), TARGET_FPR)
    set_threshold(result.model_dir, threshold, {"target_fpr": TARGET_FPR, "unit": "one score per person per file", "set": "calibration people"})
    detector = Detector.load(result.model_dir)
    record = {"arm": arm, "fold": None if fold is None else UPSAMPLERS[fold], "seed": seed, "requested_steps": args.steps, "steps": result.step,
              "threshold": threshold, "units": {}, "cam": {},
              "trained_latent": bool(args.train_latent and args.latent and arm != "blends"), "resumed": resumed, "overrides": list(args.overrides)}
    tiles = {}
    for name, manifest in sets.items():
        record["units"][name] = unit_report(score_units(detector, manifest, faces), threshold)
        if args.cam_faces and name in ("test_sbi", *[s for s in sets if s.startswith("fp_")]):
            record["cam"][name], tiles[name] = cam_spread(detector, manifest, faces_by_stem, args.cam_faces)
    if tiles:
        cam_figure(tiles, record["cam"], run_name(arm, fold, seed)).save(folder / "cam.png")
    record["train_minutes"] = _train_minutes(folder / "train" / "log.csv")
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def _train_minutes(log: Path) -> float | None:
    """Training minutes of a run, from the ``seconds`` of its log (``None`` without one). The clock restarts
    when a run is resumed: the minutes are the sum of each segment's last figure."""
    seconds = [float(row["seconds"]) for row in csv.DictReader(log.open()) if row.get("seconds")] if log.is_file() else []
    ends = [a for a, b in zip(seconds, seconds[1:]) if b < a] + seconds[-1:]
    return round(sum(ends) / 60, 2) if seconds else None


def held_out(record: dict, name: str) -> bool:
    """Whether the run never trained on the fakes of test set ``name``."""
    if not name.startswith("fp_") or record["arm"] == "blends":
        return True
    if name == "fp_latent":
        return not record.get("trained_latent", False)
    return name == f"fp_{record['fold']}"


def table(records: list[dict], sets: list[str]) -> list[str]:
    """Per arm: AUC per set (mean over its runs where the set is held out; [min-max]), the worst held-out kind, the real FPR."""
    head = ["arm", "runs", *[f"AUC {s}" for s in sets], "worst held-out fp kind", "FPR overall", "FPR per group", "Grad-CAM++ spread (sbi / fp)",
            "largest region (sbi / fp)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in ARMS:
        runs = [r for r in records if r["arm"] == arm]
        if not runs:
            continue
        cells = []
        for name in sets:
            values = [r["units"][name]["overall"]["auc"] for r in runs if held_out(r, name) and name in r["units"]]
            cells.append(f"{np.mean(values):.3f} [{min(values):.3f}-{max(values):.3f}]" if values else "trained on")
        kinds = {kind: [r["units"][f"fp_{kind}"]["overall"]["auc"] for r in runs if held_out(r, f"fp_{kind}") and f"fp_{kind}" in r["units"]] for kind in UPSAMPLERS}
        worst = min(((np.mean(v), k) for k, v in kinds.items() if v), default=None)
        fpr = [r["units"]["test_sbi"]["overall"]["fpr"] for r in runs]
        groups = {g: [r["units"]["test_sbi"]["groups"][g]["fpr"] for r in runs if g in r["units"]["test_sbi"]["groups"]]
                  for g in dict.fromkeys(g for r in runs for g in r["units"]["test_sbi"]["groups"])}
        cells += [f"{worst[1]} {worst[0]:.3f}" if worst else "n/a", f"{np.mean(fpr):.3f} [{min(fpr):.3f}-{max(fpr):.3f}]",
                  ", ".join(f"{g} {min(v):.2f}-{max(v):.2f}" for g, v in groups.items()),
                  _cam_cell(runs, "spread"), _cam_cell(runs, "largest_share")]
        lines.append(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def _cam_cell(runs: list[dict], key: str) -> str:
    """Mean of a Grad-CAM++ figure over the runs, on the self-blends / on every fingerprint set."""
    sbi = [r["cam"]["test_sbi"][key] for r in runs if "test_sbi" in r.get("cam", {})]
    fp = [r["cam"][s][key] for r in runs for s in r.get("cam", {}) if s.startswith("fp_")]
    return f"{np.mean(sbi):.2f} / {np.mean(fp):.2f}" if sbi and fp else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=None, help="a recipe's prepared data folder (runs/default-model/data); not needed with --table")
    parser.add_argument("--decoders", type=Path, default=None, help="folder of fingerprint decoders (python -m deepfake_attention.data.generators); not needed with --table")
    parser.add_argument("--latent", nargs=2, default=None, metavar=("ENCODER", "DECODER"), help="weight files of a latent autoencoder")
    parser.add_argument("--train-latent", action="store_true", help="also train on the latent autoencoder's fakes (default: held out)")
    parser.add_argument("--work", type=Path, default=Path("runs/fingerprints"), help="run folders, test sets and the table")
    parser.add_argument("--records", type=Path, default=Path("bench/results/fingerprints"), help="one JSON record per finished run (committed)")
    parser.add_argument("--rotate-seeds", action="store_true", help="each held-out fold once, with seed fold %% seeds (4 runs per arm)")
    parser.add_argument("--max-runs", type=int, default=None, help="train at most this many new runs, then print the table so far")
    parser.add_argument("--table", action="store_true", help="train nothing: the table of the records in --records")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, out of {','.join(ARMS)}")
    parser.add_argument("--folds", default=",".join(UPSAMPLERS), help="held-out up-sampling kinds to run (default: all four)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    parser.add_argument("--fingerprint-prob", type=float, default=0.5, help="share of fakes that are fingerprints (default 0.5)")
    parser.add_argument("--cam-faces", type=int, default=40, help="fakes per set for the Grad-CAM++ spread (0: skip)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--score-model", default=None, metavar="DIR",
                        help="train nothing: score this checkpoint (e.g. the shipped one: 'default') on the sets at its own threshold, and print the units")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    folds = [UPSAMPLERS.index(k) for k in args.folds.split(",") if k]
    if any(a not in ARMS for a in arms):
        parser.error(f"--arms must name some of {ARMS}")
    args.work.mkdir(parents=True, exist_ok=True)
    plan = planned_runs(arms, folds, args.seeds, args.rotate_seeds)
    recorded = {run: read_record(args.records / f"{run_name(*run)}.json", args.steps) for run in plan}
    if args.table:
        return write_table([r for r in recorded.values() if r is not None], len(plan), args)
    if args.prepared is None or args.decoders is None:
        parser.error("--prepared and --decoders are needed to train or score (all but --table)")
    paths = {name: Path(path) for name, path in read_prepared(args.prepared)["paths"].items()}
    sets = write_sets(args.prepared, args.decoders, tuple(args.latent) if args.latent else None, args.work / "sets")
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    faces_by_stem = {Path(face.crop).stem: {"landmarks": face.landmarks} for face in read_faces(args.prepared / "faces-test")}
    if args.score_model is not None:
        detector = Detector.load(None if args.score_model == "default" else args.score_model)
        scored = {name: unit_report(score_units(detector, manifest, faces), detector.threshold)["overall"] for name, manifest in sets.items()}
        for name, figures in scored.items():
            print(f"{name}: AUC {figures['auc']:.3f}, TPR {figures['tpr']:.3f}, FPR {figures['fpr']:.3f} ({figures['reals']} real / {figures['fakes']} fake units)")
        (args.work / "scored.json").write_text(json.dumps({"model": args.score_model, "sha256": detector.model_sha256, "sets": scored}, indent=2))
        return 0
    missing = [run for run, record in recorded.items() if record is None]
    for run in missing[:args.max_runs]:
        recorded[run] = run_one(*run, args, paths, sets, faces, faces_by_stem)
    return write_table([r for r in recorded.values() if r is not None], len(plan), args)


def write_table(records: list[dict], planned: int, args: argparse.Namespace) -> int:
    """Print the table of ``records`` and write it (``fingerprints.md``, ``fingerprints.json``) into ``--work``."""
    sets = list(dict.fromkeys(name for record in records for name in record["units"]))
    missing = planned - len(records)
    lines = table(records, sets)
    note = (f"{len(records)} runs{f' ({missing} planned runs not trained yet)' if missing else ''}, {args.steps} steps per run; AUC over units (one score per person per file) of the test people's reals against each set, "
            "mean [min-max] over the runs that never trained on that set's fakes; FPR of the test reals at each run's threshold "
            "(5% over the calibration people's units); spread = share of Grad-CAM++ maps with no region above 1.5x its area share.")
    (args.work / "fingerprints.md").write_text("\n".join(lines) + "\n\n" + note + "\n")
    (args.work / "fingerprints.json").write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "runs": records}, indent=2))
    print("\n".join(lines) + "\n\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
