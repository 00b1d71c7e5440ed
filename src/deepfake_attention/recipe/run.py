"""The default model's recipe (v3 and later), one command from real faces to a calibrated, evaluated checkpoint.

    python -m deepfake_attention.recipe --data ../shared/data --out runs/default-model [--install]

1. Data. The real-face corpus (``real-faces/``: photos and videos of hundreds of people), the two
   shared FaceForensics++ originals and scikit-image's astronaut photo; never the demo photo
   (matplotlib's Grace Hopper), which stays a person the model has not seen. Split by person
   (:mod:`.corpus`: identities that share a file stay together; stratified over source groups;
   the seed :data:`SPLIT_SEED` is fixed before any training and recorded).
2. Faces (:mod:`.faces`): the configured detector, a fixed number of frames per video, crops
   padded past the border as the config says.
3. Held-out sets, written to disk: the calibration people's reals and self-blends; the test
   people's reals, self-blends (made the training way) and the differently made family.
4. Training (``configs/default_model.toml``): self-blends made on the fly, a face and its own
   blend in one batch, people weighted equally, compression / resolution / blur / noise / colour
   applied to both classes alike; validation on the calibration set.
5. Calibration on the calibration people's units (:mod:`.units`: one score per person per file,
   a video's the mean of its frames): temperature and offset fitted to the units' P(fake), the
   offset folded into the classifier's bias (:data:`CALIBRATION`; ``crops`` fits a temperature on
   the crops instead, as v4.1 was), and the threshold at :data:`TARGET_FPR` over the units, with
   each crop scored with its mirror (:data:`FLIP_AVERAGE`, written into the checkpoint's preprocessing).
6. Evaluation: ``evaluate`` on both test sets, and the unit-level report per source group, next
   to the previously shipped model on the same units. ``--install`` copies the result into the
   package with its model card.

A run given ``--set run.stop_at_step=N`` trains up to step N and stops there (a session's slice):
it writes a paused summary and skips steps 5-6 and the install; ``--resume`` continues it.
``--weights DIR`` skips step 4: the trained checkpoint ``DIR`` (e.g. the shipped model) is
calibrated and evaluated as the recipe would, so that a change of inference or calibration alone
(flip averaging, unit-level calibration) is measured on the same test units without training again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_config
from ..data.face_records import read_faces
from ..data.synth import family_config
from ..data.synth_writer import write_fakes
from ..detector import DEFAULT_MODEL_DIR, Detector
from ..evaluation import calibrate, evaluate
from ..files import atomic_write_json
from ..train import load_config, train
from .corpus import read_corpus, split_by_identity, split_summary
from .faces import FaceInfo, extra_files, extract_faces
from .units import calibrate_units, score_units, unit_report, unit_threshold

CONFIG = "default_model.toml"
SPLIT_SEED = 20261201
"""Seed of the identity split, fixed before any training (recorded in ``summary.json`` and the card)."""
TARGET_FPR = 0.05
FLIP_AVERAGE = True
"""Score each crop with its horizontal mirror (``preprocess.flip_average``): the shipped model is calibrated and evaluated so."""
CALIBRATION = "units"
"""``units``: temperature and offset fitted to the calibration people's units (:func:`.units.calibrate_units`);
``crops``: a temperature fitted to their crops (``calibrate``), the threshold still over their units."""
CALIBRATIONS = ("units", "crops")
PREPARED_FILE = "prepared.json"
HELDOUT = {"calibration": ("sbi", 1001), "test_sbi": ("sbi", 2002), "test_other": ("other", 3003)}
"""Held-out set -> (fake family, seed); the calibration set is made of the calibration people, the tests of the test people."""


def prepare(data_root: Path, work: Path, *, detector: str, crop_scale: float, crop_border: str, frames_per_video: int = 8,
            landmarks: bool = True, limit: int | None = None, align: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Split the people, extract their faces, write the held-out sets; returns paths and the split's summary.

    ``limit`` keeps only the first N corpus files (smoke runs); ``align`` turns every crop level on
    the detector's five landmarks (a measured arm, ``bench/ablation.py``; the shipped recipe does not)."""
    corpus_root = data_root / "real-faces"
    files = read_corpus(corpus_root)[:limit] + extra_files(data_root, work)
    splits = split_by_identity(files, seed=SPLIT_SEED)
    predictor = None
    if landmarks:
        from ..data.landmarks import LandmarkPredictor

        predictor = LandmarkPredictor()
    folders, infos, missed = extract_faces(files, splits, corpus_root, work, detector=detector, crop_scale=crop_scale, crop_border=crop_border,
                                           frames_per_video=frames_per_video, landmarks=predictor, align=align, progress=progress)
    paths: dict[str, str] = {"faces_train": str(folders["train"])}
    for name, (family, seed) in HELDOUT.items():
        people = "calibration" if name == "calibration" else "test"
        out = work / f"heldout-{name}"
        write_fakes(read_faces(folders[people]), out, per_face=1, seed=seed, family=family, config=family_config(family), progress=progress)
        paths[name] = str(out / "manifest.csv")
    paths["prior_masks"] = paths["calibration"]  # the localisation baseline: the mean blend mask, from people the tests never see
    prepared = {"paths": paths, "split_seed": SPLIT_SEED, "split": split_summary(files, splits), "faces": len(infos), "missed": missed,
                "frames_per_video": frames_per_video, "landmarks": landmarks, "align": align}
    atomic_write_json(work / PREPARED_FILE, prepared)
    return prepared


def read_prepared(work: Path) -> dict[str, Any]:
    """What :func:`prepare` returned for ``work``, from the ``prepared.json`` it wrote (raises when absent)."""
    path = work / PREPARED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{work} is not a prepared data folder: {PREPARED_FILE} is missing (run prepare first)")
    return json.loads(path.read_text())


def _faces(work: Path) -> list[FaceInfo]:
    return [FaceInfo(**face) for face in json.loads((work / "faces.json").read_text())["faces"]]


def set_threshold(model_dir: Path, threshold: float, note: dict[str, Any]) -> None:
    """Write the unit-level threshold into the checkpoint's ``config.json`` (beside ``calibrate``'s record)."""
    config = read_config(model_dir)
    info = dict(config.info, unit_threshold=note)
    atomic_write_json(model_dir / CONFIG_FILE, dataclasses.replace(config, threshold=threshold, info=info).to_json())


def copy_weights(source: Path, model_dir: Path, *, detector: str, crop_scale: float, crop_border: str) -> dict[str, Any]:
    """Copy a trained release checkpoint (its config and weights only) to ``model_dir`` for calibration and
    evaluation; its face crops must be made as the recipe makes them. Returns what the card says of it."""
    _, config = load_checkpoint(source)  # strict: the weights load and match their recorded SHA-256
    pre = config.preprocess
    if not config.trained:
        raise ValueError(f"{source} is an untrained checkpoint; --weights takes trained weights")
    if (pre.detector, pre.crop_scale, pre.crop_border) != (detector, crop_scale, crop_border):
        raise ValueError(f"{source} crops faces with {pre.detector}, scale {pre.crop_scale}, border {pre.crop_border}; "
                         f"the recipe's held-out sets use {detector}, {crop_scale}, {crop_border}")
    if "train_config" not in config.info:
        raise ValueError(f"{source} records no training config (info.train_config): not a checkpoint the recipe trained")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy2(source / name, model_dir / name)
    return {"sha256": config.weights_sha256, "step": config.info.get("step"), "train_config": config.info["train_config"]}


def run(data_root: Path, out: Path, *, landmarks: bool = True, overrides: list[str] | None = None, resume: bool = False,
        previous: Path | None = DEFAULT_MODEL_DIR, limit: int | None = None, robustness: bool = True,
        flip_average: bool = FLIP_AVERAGE, weights: Path | None = None, calibration: str = CALIBRATION) -> dict[str, Any]:
    """Prepare, train, calibrate and evaluate; returns the summary written to ``out/summary.json``.

    ``resume`` continues training from the newest checkpoint under ``out/train`` (the prepared data
    is remade from the same seeds, so it is identical). ``previous`` (default: the shipped model,
    read before anything is installed) is scored on the same test units for comparison.
    ``weights``: calibrate and evaluate this trained checkpoint instead of training one.
    ``calibration``: one of :data:`CALIBRATIONS` (see :data:`CALIBRATION`)."""
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if weights is not None and resume:
        raise ValueError("resume continues a training run; weights skips training: give one of them")
    started = time.perf_counter()
    config_path = Path(str(resources.files("deepfake_attention.configs") / CONFIG))
    base = load_config(config_path, list(overrides or []))
    facts: dict[str, Any] = {"resumed": resume}
    model_dir = out / "train" / "model"
    if weights is not None:  # checked and copied before the data is prepared: a wrong checkpoint fails at once
        reused = copy_weights(Path(weights), model_dir, detector=base.data.detector, crop_scale=base.data.crop_scale,
                              crop_border=base.data.crop_border)
        facts.update(steps=reused["step"], stopped_early=None, train_config=reused.pop("train_config"), weights_from=reused)
    work = out / "data"
    prepared = prepare(data_root, work, detector=base.data.detector, crop_scale=base.data.crop_scale, crop_border=base.data.crop_border,
                       landmarks=landmarks, limit=limit)
    paths = prepared["paths"]
    after_prepare = time.perf_counter()
    if weights is None and base.model.init_from:  # read now: the folder may be the shipped model, which --install replaces
        start = read_config(base.model.init_from)
        facts["init_from"] = {"path": base.model.init_from, "sha256": start.weights_sha256, "step": start.info.get("step")}
    if weights is None:
        cfg = load_config(config_path, [
            f"run.out={json.dumps(str(out / 'train'))}",
            f"data.real_faces={json.dumps([paths['faces_train']])}",
            f"data.val={json.dumps([paths['calibration']])}",
        ] + list(overrides or []))
        result = train(cfg, resume=resume)
        model_dir = result.model_dir
        facts.update(steps=result.step, stopped_early=result.stopped_early, train_config=cfg.to_dict())
        if result.paused:
            summary = {"model_dir": str(model_dir), "steps": result.step, "paused": True, "resumed": resume,
                       "minutes": {"prepare": (after_prepare - started) / 60, "train": (time.perf_counter() - after_prepare) / 60}}
            atomic_write_json(out / "summary.json", summary)
            return summary
    after_train = time.perf_counter()
    faces = _faces(work)
    if calibration == "units":
        fitted = calibrate_units(model_dir, paths["calibration"], faces, target_fpr=TARGET_FPR, flip_average=flip_average)
        threshold = fitted.threshold
    else:
        fitted = calibrate(model_dir, paths["calibration"], target_fpr=TARGET_FPR, flip_average=flip_average)
        threshold = unit_threshold(score_units(Detector.load(model_dir), paths["calibration"], faces), TARGET_FPR)
    set_threshold(model_dir, threshold, {"target_fpr": TARGET_FPR, "unit": "one score per person per file", "set": "calibration people"})
    evaluations = {}
    for name in ("test_sbi", "test_other"):
        command = f"deepfake-attention evaluate {paths[name]} --model {model_dir}" + (" --robustness" if robustness and name == "test_sbi" else "")
        evaluations[name] = str(evaluate(paths[name], out / f"eval-{name}", model=model_dir, prior_masks=paths["prior_masks"],
                                         robustness=robustness and name == "test_sbi", command=f"{command} --prior-masks {paths['prior_masks']}").metrics_path)
    units = {"model": _unit_reports(Detector.load(model_dir), paths, faces)}
    if previous is not None and (Path(previous) / CONFIG_FILE).is_file():
        old = Detector.load(previous)
        units["previous"] = {"model_sha256": old.model_sha256, "flip_average": old.config.preprocess.flip_average, **_unit_reports(old, paths, faces)}
    summary = {
        "model_dir": str(model_dir), **facts, "flip_average": flip_average,
        "minutes": {"prepare": (after_prepare - started) / 60, "train": (after_train - after_prepare) / 60 if weights is None else None,
                    "total": (time.perf_counter() - started) / 60},
        "calibration": asdict(fitted), "unit_threshold": threshold, "prepared": prepared, "evaluations": evaluations, "units": units,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def _unit_reports(detector: Detector, paths: dict[str, str], faces: list[FaceInfo]) -> dict[str, Any]:
    """Unit-level figures at the detector's own threshold: reals with the SBI fakes, and reals with the other family."""
    reports = {}
    for name in ("test_sbi", "test_other"):
        reports[name] = unit_report(score_units(detector, paths[name], faces), detector.threshold)
    return reports


def install(model_dir: Path, target: Path, card: str) -> None:
    """Replace the shipped checkpoint folder ``target`` with ``model_dir`` plus its model card."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target)
    (target / "MODEL_CARD.md").write_text(card, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deepfake_attention.recipe", description="Train, calibrate and evaluate the default model.")
    parser.add_argument("--data", default="../shared/data", help="folder holding real-faces/ and real-videos/ (default ../shared/data)")
    parser.add_argument("--out", default="runs/default-model", help="run folder (default runs/default-model)")
    parser.add_argument("--no-landmarks", action="store_true", help="landmark-free masks (ellipses and polygons over the face box)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the training config")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its newest checkpoint")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N corpus files (a smoke run)")
    parser.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="calibrate and evaluate this trained checkpoint (e.g. the shipped model) instead of training one")
    parser.add_argument("--no-flip-average", action="store_true", help="score each crop once, not with its mirror (half the cost)")
    parser.add_argument("--calibration", choices=CALIBRATIONS, default=CALIBRATION,
                        help="units (default): temperature and offset fitted to the calibration people's units, the offset folded into "
                             "the weights; crops: a temperature fitted to their crops")
    parser.add_argument("--install", action="store_true", help="copy the result into the package as the shipped default model")
    args = parser.parse_args()
    summary = run(Path(args.data), Path(args.out), landmarks=not args.no_landmarks, overrides=args.overrides, resume=args.resume, limit=args.limit,
                  flip_average=not args.no_flip_average, weights=args.weights, calibration=args.calibration)
    print(json.dumps({k: summary[k] for k in ("model_dir", "steps", "minutes", "unit_threshold") if k in summary}, indent=2))
    if summary.get("paused"):
        print(f"paused at step {summary['steps']}: not calibrated, evaluated or installed; continue with --resume")
        return
    if args.install:
        from .model_card import model_card

        target = Path(__file__).resolve().parents[1] / "weights" / "default"
        install(Path(summary["model_dir"]), target, model_card(Path(args.out)))
        print(f"installed into {target}")


if __name__ == "__main__":
    main()
