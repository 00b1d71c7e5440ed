"""Calibration fitted on units or on crops: which gives calibrated scores to the people a user brings?

Scores the recipe's calibration and test rows once with a checkpoint (its own preprocessing, the
mirror included) and fits three calibrations on the calibration people, each applied to the
test people's units (one score per person per file: the mean P(fake) of a person's frames in a
file, as ``analyze`` scores a video's track):

- ``temperature on crops``: the recipe's ``--calibration crops`` (v4.1 and before);
- ``affine on crops``: temperature and offset on the crops (``calibrate --fit affine``);
- ``affine on units``: temperature and offset on the units' mean P(fake) (the recipe's default).

Each gets its threshold at 5% false positives over the calibration units. The table: ECE of the
test units with reals and self-blends 1:1, their NLL, AUC, TPR and FPR at that threshold; then
each fit's ECE and NLL minus the crop temperature's, with paired bootstrap 95% CIs (the test units
resampled within each class, the same units for both fits in each replicate).

    python bench/unit_calibration.py --prepared runs/default-model/data            # the shipped model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from deepfake_attention import Detector
from deepfake_attention.metrics import apply_affine, apply_temperature, auc_roc, expected_calibration_error, fit_affine, fit_temperature
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.run import TARGET_FPR, read_prepared
from deepfake_attention.recipe.units import average_units, unit_rows, unit_threshold

from ablation import percentile_ci, resample_within_classes

Scores = Callable[[np.ndarray], np.ndarray]
"""Row logits [N, 2] -> calibrated P(fake) [N]."""


def fits(logits: np.ndarray, labels: np.ndarray, keys: list) -> dict[str, Scores]:
    """The three calibrations of the module docstring, fitted on the calibration rows."""
    t = fit_temperature(logits, labels).temperature
    crops = fit_affine(logits, labels)
    units = fit_affine(logits, labels, groups=keys)
    print(f"fitted: temperature on crops T {t:.3f}; affine on crops T {crops.temperature:.3f} offset {crops.offset:+.3f}; "
          f"affine on units T {units.temperature:.3f} offset {units.offset:+.3f} ({units.groups} units)")
    return {"temperature on crops": lambda z: apply_temperature(z, t),
            "affine on crops": lambda z: apply_affine(z, crops.temperature, crops.offset),
            "affine on units": lambda z: apply_affine(z, units.temperature, units.offset)}


def balanced_ece(y: np.ndarray, p: np.ndarray) -> float:
    """ECE of the first n reals and first n fakes (n the smaller class), as the recipe's unit report takes it."""
    reals, fakes = p[y == 0], p[y == 1]
    n = min(reals.size, fakes.size)
    return expected_calibration_error(np.r_[np.zeros(n), np.ones(n)], np.r_[reals[:n], fakes[:n]])


def nll(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def score_difference(score: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, ours: np.ndarray, base: np.ndarray, n: int,
                     seed: int) -> tuple[float, float, float]:
    """``score(y, p)`` of ``ours`` minus that of ``base`` on the same units, with its paired bootstrap 95% CI."""
    classes = [np.flatnonzero(y == c) for c in (0, 1)]
    stats = []
    for b in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
        idx = resample_within_classes(classes, rng)
        stats.append(score(y[idx], ours[idx]) - score(y[idx], base[idx]))
    low, high = percentile_ci(stats)
    return score(y, ours) - score(y, base), low, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=Path("runs/default-model/data"), help="a recipe's prepared data folder")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="replicates of the paired ECE difference (default 2000)")
    args = parser.parse_args()
    paths = read_prepared(args.prepared)["paths"]
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    detector = Detector.load(args.model)
    print(f"model {detector.model_sha256[:12]}, flip_average {detector.config.preprocess.flip_average}")
    scored = {name: unit_rows(detector, paths[name], faces) for name in ("calibration", "test_sbi", "test_other")}
    logits, labels, keys, _ = scored["calibration"]
    calibrations = fits(logits, labels, keys)
    print("\n| fit | test | ECE 1:1 | NLL | AUC | TPR | FPR |\n|---|---|---|---|---|---|---|")
    probs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for fit_name, scores in calibrations.items():
        threshold = unit_threshold(average_units(keys, scored["calibration"][3], scores(logits)), TARGET_FPR)
        for name in ("test_sbi", "test_other"):
            z, _, unit_keys, groups = scored[name]
            units = average_units(unit_keys, groups, scores(z))
            y, p = np.array([u.fake for u in units], dtype=int), np.array([u.prob for u in units])
            probs[fit_name, name] = y, p
            print(f"| {fit_name} | {name} | {balanced_ece(y, p):.3f} | {nll(y, p):.3f} | {auc_roc(y, p):.3f} | "
                  f"{np.mean(p[y == 1] >= threshold):.3f} | {np.mean(p[y == 0] >= threshold):.3f} |")
    base = "temperature on crops"
    print(f"\n| fit | test | ECE 1:1 minus {base}'s [paired 95% CI] | NLL minus {base}'s |\n|---|---|---|---|")
    for fit_name in calibrations:
        if fit_name == base:
            continue
        for name in ("test_sbi", "test_other"):
            y, p = probs[fit_name, name]
            cells = [score_difference(score, y, p, probs[base, name][1], args.bootstrap, seed=0) for score in (balanced_ece, nll)]
            print(f"| {fit_name} | {name} | " + " | ".join(f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]" for e, lo, hi in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
