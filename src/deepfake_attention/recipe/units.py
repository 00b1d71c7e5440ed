"""The recipe's unit of measurement: one score per person per file.

A held-out set's rows are face crops (a video gives several frames of each person); a user sees
one verdict per person in a photo and, for a video, per face track, whose score is the mean of
its frames (as ``analyze`` scores a track). So the recipe averages a person's frames of one file
into one unit, for reals and for their self-blends alike, and measures per source group: the
false-positive rate at the shipped threshold, the true-positive rate, the AUC and the ECE.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.manifest import read_manifest
from ..detector import Detector
from ..evaluation.calibrate import score_rows
from ..metrics.calibration import apply_temperature, expected_calibration_error
from ..metrics.classification import auc_roc, threshold_at_fpr
from .faces import FaceInfo


@dataclass(frozen=True)
class Unit:
    """One person in one file, real or a blend of them, with its mean P(fake) over the file's frames."""

    group: str
    file: str
    person: str
    fake: bool
    prob: float
    frames: int


def _stem(path: str) -> str:
    """A held-out row's crop stem: ``0012-t0-f1`` for ``images/real/0012-t0-f1.png`` and ``images/fake/0012-t0-f1-n0.png``."""
    stem = Path(path).stem
    head, _, tail = stem.rpartition("-n")
    return head if head and tail.isdigit() else stem


def score_units(detector: Detector, manifest: str | Path, faces: Sequence[FaceInfo], *, batch_size: int = 64) -> list[Unit]:
    """Score a held-out manifest (written by :func:`~..data.synth_writer.write_fakes` from the recipe's
    faces) with ``detector`` and average each person's frames of a file, per class."""
    by_stem = {Path(face.crop).stem: face for face in faces}
    rows = read_manifest(manifest)
    logits, labels = score_rows(detector, rows, batch_size=batch_size)
    probs = apply_temperature(logits, detector.config.temperature)
    grouped: dict[tuple[str, str, bool], list[float]] = defaultdict(list)
    groups: dict[tuple[str, str, bool], str] = {}
    for row, prob, label in zip(rows, probs, labels):
        face = by_stem.get(_stem(row.path))
        if face is None:
            raise ValueError(f"{row.path} of {manifest} is not one of the recipe's faces")
        key = (face.file, face.person, bool(label))
        grouped[key].append(float(prob))
        groups[key] = face.group
    return [Unit(groups[key], key[0], key[1], key[2], float(np.mean(values)), len(values)) for key, values in grouped.items()]


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
