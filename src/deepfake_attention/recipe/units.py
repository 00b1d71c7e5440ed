"""The recipe's unit of measurement: one score per person per file.

A held-out set's rows are face crops (a video gives several frames of each person); a user sees
one verdict per person in a photo and, for a video, per face track, whose score is the mean of
its frames (as ``analyze`` scores a track). So the recipe averages a person's frames of one file
into one unit, for reals and for their self-blends alike, and measures per source group: the
false-positive rate at the shipped threshold, the true-positive rate, the AUC and the ECE.

:func:`calibrate_units` calibrates on those units too: temperature and offset fitted to the units'
mean P(fake) (the score a user sees), the offset folded into the classifier's bias.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.manifest import read_manifest
from ..detector import Detector
from ..evaluation.calibrate import Calibration, score_rows, write_calibration
from ..metrics.calibration import apply_affine, apply_temperature, expected_calibration_error, fit_affine
from ..metrics.classification import auc_roc, threshold_at_fpr
from .faces import FaceInfo

UnitKey = tuple[str, str, bool]
"""(file, person, fake): the rows of one unit."""


@dataclass(frozen=True)
class Unit:
    """One person in one file, real or a blend of them, with its mean P(fake) over the file's frames."""

    group: str
    file: str
    person: str
    fake: bool
    prob: float
    frames: int


def crop_stem(path: str) -> str:
    """A held-out row's crop stem: ``0012-t0-f1`` for ``images/real/0012-t0-f1.png`` and ``images/fake/0012-t0-f1-n0.png``."""
    stem = Path(path).stem
    head, _, tail = stem.rpartition("-n")
    return head if head and tail.isdigit() else stem


def unit_keys(paths: Sequence[str], labels: Sequence[int] | np.ndarray, faces: Sequence[FaceInfo], *, source: str = "held-out set"
              ) -> tuple[list[UnitKey], dict[UnitKey, str]]:
    """Each row's unit (from its crop path, :func:`crop_stem`, and its label) and each unit's source group."""
    by_stem = {Path(face.crop).stem: face for face in faces}
    keys: list[UnitKey] = []
    groups: dict[UnitKey, str] = {}
    for path, label in zip(paths, labels):
        face = by_stem.get(crop_stem(path))
        if face is None:
            raise ValueError(f"{path} of {source} is not one of the recipe's faces")
        keys.append((face.file, face.person, bool(label)))
        groups[keys[-1]] = face.group
    return keys, groups


def unit_rows(detector: Detector, manifest: str | Path, faces: Sequence[FaceInfo], batch_size: int = 64
              ) -> tuple[np.ndarray, np.ndarray, list[UnitKey], dict[UnitKey, str]]:
    """Logits [N, 2] and labels [N] of a held-out manifest's rows (face crops written by
    :func:`~..data.synth_writer.write_fakes` from the recipe's faces), each row's unit and each unit's source group."""
    rows = read_manifest(manifest)
    logits, labels = score_rows(detector, rows, batch_size=batch_size)
    keys, groups = unit_keys([row.path for row in rows], labels, faces, source=str(manifest))
    return logits, labels, keys, groups


def average_units(keys: Sequence[UnitKey], groups: dict[UnitKey, str], probs: np.ndarray) -> list[Unit]:
    """The units of :func:`unit_rows`' rows, each scored by the mean of its rows' ``probs`` [N]."""
    grouped: dict[UnitKey, list[float]] = defaultdict(list)
    for key, prob in zip(keys, probs):
        grouped[key].append(float(prob))
    return [Unit(groups[key], key[0], key[1], key[2], float(np.mean(values)), len(values)) for key, values in grouped.items()]


def score_units(detector: Detector, manifest: str | Path, faces: Sequence[FaceInfo], *, batch_size: int = 64) -> list[Unit]:
    """Score a held-out manifest with ``detector`` and average each person's frames of a file, per class."""
    logits, _, keys, groups = unit_rows(detector, manifest, faces, batch_size)
    return average_units(keys, groups, apply_temperature(logits, detector.config.temperature))


def calibrate_units(model_dir: str | Path, manifest: str | Path, faces: Sequence[FaceInfo], *, target_fpr: float, flip_average: bool,
                    bounds: tuple[float, float] = (0.5, 5.0), batch_size: int = 64) -> Calibration:
    """Fit ``P(fake) = sigmoid(gap / T + offset)`` to the calibration people's units (each scored by the
    mean of its frames' P(fake)), fold the offset into the checkpoint's weights and write T, the
    mirror setting and the record into its ``config.json``. The returned threshold is the unit-level
    one at ``target_fpr`` (written by the caller with its note)."""
    detector = Detector.load(model_dir)
    detector.set_preprocess(flip_average=flip_average)
    logits, labels, keys, groups = unit_rows(detector, manifest, faces, batch_size)
    fit = fit_affine(logits, labels, groups=keys, bounds=bounds)
    before = average_units(keys, groups, apply_temperature(logits, 1.0))
    after = average_units(keys, groups, apply_affine(logits, fit.temperature, fit.offset))
    threshold = unit_threshold(after, target_fpr)
    y = np.array([u.fake for u in after], dtype=int)
    hits = np.array([u.prob >= threshold for u in after])
    result = Calibration(
        temperature=fit.temperature, offset=fit.offset, fit="affine", threshold=threshold, target_fpr=target_fpr,
        achieved_fpr=float(hits[y == 0].mean()), achieved_tpr=float(hits[y == 1].mean()), nll_before=fit.nll_before, nll_after=fit.nll_after,
        ece_before=expected_calibration_error(y, np.array([u.prob for u in before])), ece_after=expected_calibration_error(y, np.array([u.prob for u in after])),
        at_bound=fit.at_bound, samples=len(after), unit="person per file",
    )
    write_calibration(model_dir, result, preprocess=detector.config.preprocess, manifest=Path(manifest).name, crops=len(keys))
    return result


def unit_threshold(units: Sequence[Unit], target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate over the real units is at most ``target_fpr``."""
    labels = np.array([u.fake for u in units], dtype=int)
    point = threshold_at_fpr(labels, np.array([u.prob for u in units]), target_fpr)
    return float(min(1.0, max(0.0, point.threshold)))


def _figures(reals: list[Unit], fakes: list[Unit], threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"reals": len(reals), "fakes": len(fakes)}
    out["fpr"] = float(np.mean([u.prob >= threshold for u in reals])) if reals else None
    out["tpr"] = float(np.mean([u.prob >= threshold for u in fakes])) if fakes else None
    if reals and fakes:
        y = np.array([0] * len(reals) + [1] * len(fakes))
        p = np.array([u.prob for u in reals + fakes])
        out["auc"] = auc_roc(y, p)
        n = min(len(reals), len(fakes))  # ECE on a 1:1 balance (the first n of each, in manifest order)
        out["ece_balanced"] = expected_calibration_error(np.array([0] * n + [1] * n), np.array([u.prob for u in reals[:n] + fakes[:n]]))
    return out


def unit_report(units: Sequence[Unit], threshold: float, *, min_group: int = 10) -> dict[str, Any]:
    """Overall and per source group: counts, FPR and TPR at ``threshold``, AUC, balanced ECE.

    ``groups_checked`` lists the groups with at least ``min_group`` real units (the ones a
    per-group FPR goal applies to)."""
    reals = [u for u in units if not u.fake]
    fakes = [u for u in units if u.fake]
    report: dict[str, Any] = {"threshold": threshold, "overall": _figures(reals, fakes, threshold), "groups": {}}
    for group in sorted({u.group for u in units}):
        report["groups"][group] = _figures([u for u in reals if u.group == group], [u for u in fakes if u.group == group], threshold)
    report["groups_checked"] = [g for g, f in report["groups"].items() if f["reals"] >= min_group]
    return report
