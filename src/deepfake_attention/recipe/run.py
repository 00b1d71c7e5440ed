"""The default model's recipe, one command from real faces to a calibrated, evaluated checkpoint.

    python -m deepfake_attention.recipe --data ../shared/data --out runs/default-model [--install]

1. Faces. Training identities: FaceForensics++ original 004 (frames) and the two package photos
   with a face (scikit-image's astronaut, matplotlib's Grace Hopper). Held out: original 634.
2. Held-out sets, written to disk, all of 634's identity: self-blended fakes made the training
   way (frames in the first half of the video calibrate, the rest test) and the differently made
   family (training faces blended onto 634's frames: cross-identity, Poisson, other mask shapes,
   JPEG 50-70).
3. Training (``configs/default_model.toml``) with validation on the calibration split.
4. Calibration: temperature (bounded) and threshold at 5% FPR on the calibration split.
5. Evaluation on both test sets (robustness included) and a model card with the numbers.
``--install`` copies the result into the package as the shipped default.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from importlib import resources
from pathlib import Path

from PIL import Image

from ..data.manifest import read_manifest, write_manifest
from ..data.synth_dataset import synthesize
from ..evaluation import calibrate, evaluate
from ..train.config import load_config
from ..train.loop import train

CONFIG = "default_model.toml"
TRAIN_VIDEO, HELDOUT_VIDEO = "ffpp_original_004.mp4", "ffpp_original_634.mp4"


def _photos(work: Path) -> Path:
    """The package photos with a face (scikit-image's astronaut, matplotlib's Grace Hopper), as files."""
    import matplotlib
    from skimage import data

    folder = work / "sources" / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    shutil.copyfile(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", folder / "grace_hopper.jpg")
    return folder


def prepare(data_root: Path, work: Path, *, landmarks: bool = True, train_frames: int = 96, heldout_frames: int = 64, other_frames: int = 32) -> dict[str, Path]:
    """Write the face folders and held-out manifests; returns their paths by role.

    Only video 634's identity is held out: its frames in the first half of the video calibrate,
    the rest test. The differently made family blends faces of the training identities onto 634's
    frames (cross-identity); rows whose target is a training identity are dropped.
    """
    videos = data_root / "real-videos"
    for name in (TRAIN_VIDEO, HELDOUT_VIDEO):
        if not (videos / name).is_file():
            raise FileNotFoundError(f"{videos / name} is missing: the recipe needs the shared FaceForensics++ originals")
    photos = _photos(work)
    common = dict(landmarks=landmarks, progress=None)
    synthesize([videos / TRAIN_VIDEO, photos], work / "faces-train", per_face=1, seed=0, family="sbi", frames_per_video=train_frames, **common)
    heldout = synthesize([videos / HELDOUT_VIDEO], work / "heldout-sbi", per_face=2, seed=1001, family="sbi", frames_per_video=heldout_frames, **common)
    other = synthesize([videos / HELDOUT_VIDEO, photos], work / "heldout-other", per_face=2, seed=2002, family="other", frames_per_video=other_frames, **common)
    rows = read_manifest(heldout)
    middle = sorted({row.frame for row in rows})[len({row.frame for row in rows}) // 2]
    calibration = [row for row in rows if row.frame < middle]
    test = [row for row in rows if row.frame >= middle]
    heldout_id = rows[0].video_id
    other_rows = [row for row in read_manifest(other) if row.source_id.split("+")[0] == heldout_id]
    return {
        "faces_train": work / "faces-train",
        "prior_masks": work / "faces-train" / "manifest.csv",
        "calibration": write_manifest(calibration, work / "heldout-sbi" / "calibration.csv"),
        "test_sbi": write_manifest(test, work / "heldout-sbi" / "test.csv"),
        "test_other": write_manifest(other_rows, work / "heldout-other" / "test.csv"),
    }


def run(data_root: Path, out: Path, *, landmarks: bool = True, overrides: list[str] | None = None, resume: bool = False) -> dict:
    """Prepare, train, calibrate and evaluate; returns the summary written to ``out/summary.json``.

    ``resume`` continues training from the newest checkpoint under ``out/train`` (the prepared
    data is remade from the same seeds, so it is identical)."""
    started = time.perf_counter()
    paths = prepare(data_root, out / "data", landmarks=landmarks)
    prepared = time.perf_counter()
    config_path = resources.files("deepfake_attention.configs") / CONFIG
    cfg = load_config(Path(str(config_path)), [
        f"run.out={json.dumps(str(out / 'train'))}",
        f"data.real_faces={json.dumps([str(paths['faces_train'])])}",
        f"data.val={json.dumps([str(paths['calibration'])])}",
    ] + list(overrides or []))
    result = train(cfg, resume=resume)
    trained = time.perf_counter()
    calibration = calibrate(result.model_dir, paths["calibration"], target_fpr=0.05)
    evaluations = {}
    for name in ("test_sbi", "test_other"):
        evaluations[name] = evaluate(
            paths[name], out / f"eval-{name}", model=result.model_dir, prior_masks=paths["prior_masks"], robustness=True,
            command=f"deepfake-attention evaluate {paths[name]} --model {result.model_dir} --prior-masks {paths['prior_masks']} --robustness",
        ).metrics
    summary = {
        "model_dir": str(result.model_dir), "steps": result.step, "stopped_early": result.stopped_early,
        "minutes": {"prepare": (prepared - started) / 60, "train": (trained - prepared) / 60, "total": (time.perf_counter() - started) / 60},
        "calibration": calibration.__dict__, "paths": {k: str(v) for k, v in paths.items()},
        "evaluations": {k: str(out / f"eval-{k}" / "metrics.json") for k in evaluations},
        "landmarks": landmarks, "resumed": resume,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def install(model_dir: Path, target: Path, card: str) -> None:
    """Replace the shipped checkpoint folder ``target`` with ``model_dir`` plus its model card."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target)
    (target / "MODEL_CARD.md").write_text(card, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deepfake_attention.recipe", description="Train, calibrate and evaluate the default model.")
    parser.add_argument("--data", default="../shared/data", help="folder holding real-videos/ (default ../shared/data)")
    parser.add_argument("--out", default="runs/default-model", help="run folder (default runs/default-model)")
    parser.add_argument("--no-landmarks", action="store_true", help="landmark-free masks (ellipses and polygons over the face box)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the training config")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its newest checkpoint")
    parser.add_argument("--install", action="store_true", help="copy the result into the package as the shipped default model")
    args = parser.parse_args()
    summary = run(Path(args.data), Path(args.out), landmarks=not args.no_landmarks, overrides=args.overrides, resume=args.resume)
    print(json.dumps(summary, indent=2))
    if args.install:
        from .model_card import model_card

        target = Path(__file__).resolve().parents[1] / "weights" / "default"
        install(Path(summary["model_dir"]), target, model_card(Path(args.out)))
        print(f"installed into {target}")


if __name__ == "__main__":
    main()
