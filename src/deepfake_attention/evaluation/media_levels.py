"""The figures of ``evaluate_media`` at one level (files or faces), from the scored files.

A level is a list of *items*, each belonging to one file and carrying that file's label: at the
media level one item per file (its P(fake)), at the face level one per scored face. A file with
no score (no face, unreadable) is one stand-in item at :data:`MISSING_SCORE`, used only in the
``missing_at_half`` figures (:data:`CONVENTION`). Groups select files: ``overall`` all of them, a
manipulation type its fakes and **all** reals, a source its reals. The AUC's 95% CI resamples
files within each class (every drawn file brings all its items), so the faces of one video never
count as independent samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.results import STATUSES
from ..metrics import BootstrapCI, auc_roc, bootstrap_ci, roc_curve
from .sections import one_class_reason

MISSING_SCORE = 0.5
CONVENTION = ("Files where no face was found, or that could not be read, are never dropped: every group counts them, and each "
              "figure is given twice: over the scored files only ('scored'), and with every such file as one item at P(fake) = 0.5 "
              "('missing_at_half'): an undecided score, as many benchmark pipelines give a video in which no face was found. "
              "At a threshold <= 0.5 such a file counts as called fake.")
LEVELS = {"media_level": "file", "face_level": "face"}
"""The two levels of ``metrics.json["media"]`` and the unit of their items."""


@dataclass(frozen=True)
class ScoredFile:
    """One manifest file with its analysis outcome."""

    path: str
    label: int
    """1 = fake."""
    group: str
    """Manipulation type (fakes) or source (reals)."""
    video_id: str
    kind: str
    status: str
    prob_fake: float | None
    """The file's score (None unless ``status == "ok"``)."""
    faces: tuple[float, ...]
    """Its face-level scores."""
    message: str | None


@dataclass(frozen=True)
class CISettings:
    """The bootstrap of the AUCs' CIs: ``replicates`` (0: none), the fewest files of each class a group needs, the seed."""

    replicates: int = 200
    min_files: int = 10
    seed: int = 0


@dataclass
class _Items:
    file: np.ndarray
    score: np.ndarray
    missing: np.ndarray
    """The item stands in (at MISSING_SCORE) for a file without a score."""


def _items(files: Sequence[ScoredFile], unit: str) -> _Items:
    file, score, missing = [], [], []
    for index, f in enumerate(files):
        values = list(f.faces) if unit == "face" else ([] if f.prob_fake is None else [f.prob_fake])
        stand_in = f.status != "ok" or not values
        values = [MISSING_SCORE] if stand_in else values
        file += [index] * len(values)
        score += values
        missing += [stand_in] * len(values)
    return _Items(np.array(file, dtype=np.int64), np.array(score, dtype=np.float64), np.array(missing, dtype=bool))


def level_section(files: Sequence[ScoredFile], unit: str, threshold: float, ci: CISettings) -> dict[str, Any]:
    """One level of ``metrics.json["media"]``: ``overall``, ``by_type`` (in order of first appearance)
    and ``by_source``; ``unit`` is ``"file"`` (media level) or ``"face"``."""
    if unit not in ("file", "face"):
        raise ValueError(f"unit must be 'file' or 'face', got {unit!r}")
    items, labels = _items(files, unit), np.array([f.label for f in files], dtype=np.int64)
    reals, groups = labels == 0, np.array([f.group for f in files], dtype=object)
    descriptions = {"file": "one score per file", "face": "every scored face, with its file's label"}
    out: dict[str, Any] = {"unit": unit, "description": descriptions[unit],
                           "overall": _group(files, items, labels, np.ones(len(files), dtype=bool), threshold, ci, roc=unit == "file")}
    types = dict.fromkeys(f.group for f in files if f.label == 1)
    out["by_type"] = {t: _group(files, items, labels, reals | (groups == t), threshold, ci, roc=unit == "file") for t in types}
    sources = dict.fromkeys(f.group for f in files if f.label == 0)
    out["by_source"] = {s: _source(files, items, reals & (groups == s), threshold) for s in sources}
    return out


def status_counts(files: Sequence[ScoredFile]) -> dict[str, int]:
    """``{"total": n, "ok": .., "no_face": .., "error": ..}``."""
    return {"total": len(files), **{status: sum(f.status == status for f in files) for status in STATUSES}}


def _group(files: Sequence[ScoredFile], items: _Items, labels: np.ndarray, chosen: np.ndarray, threshold: float, ci: CISettings, *,
           roc: bool) -> dict[str, Any]:
    """Fakes against reals among the ``chosen`` files: counts per status, the figures without and with stand-ins."""
    out: dict[str, Any] = {"files": {name: status_counts([f for f, c in zip(files, chosen) if c and f.label == value])
                                     for name, value in (("real", 0), ("fake", 1))}}
    for name, with_missing in (("scored", False), ("missing_at_half", True)):
        keep = chosen[items.file] & (with_missing | ~items.missing)
        out[name] = _figures(items.file[keep], labels, items.score[keep], threshold, ci, roc=roc and not with_missing)
    return out


def _figures(file: np.ndarray, labels: np.ndarray, p: np.ndarray, threshold: float, ci: CISettings, *, roc: bool) -> dict[str, Any]:
    """Counts, AUC (with its CI) and TPR / FPR at ``threshold`` of items from files ``file`` (labels per file)."""
    y, called = labels[file], p >= threshold
    out: dict[str, Any] = {
        "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()), "auc": None, "auc_ci": None,
        "tpr": float(called[y == 1].mean()) if (y == 1).any() else None, "fpr": float(called[y == 0].mean()) if (y == 0).any() else None,
    }
    reason = one_class_reason(y, "AUC")
    if reason is not None:
        out["unavailable"] = reason
        return out
    out["auc"] = auc_roc(y, p)
    if roc:
        curve = roc_curve(y, p)
        out["roc"] = {"fpr": curve.fpr, "tpr": curve.tpr}
    ids = np.unique(file)
    smaller = min(int((labels[ids] == 0).sum()), int((labels[ids] == 1).sum()))
    if ci.replicates == 0:
        out["ci_note"] = "no CI: bootstrap = 0"
    elif smaller < ci.min_files:
        out["ci_note"] = f"no CI: {smaller} files in the smaller class, fewer than ci_min = {ci.min_files}"
    else:
        out["auc_ci"] = file_bootstrap_auc(file, y, p, ci).to_dict()
    return out


def file_bootstrap_auc(file: np.ndarray, y: np.ndarray, p: np.ndarray, ci: CISettings) -> BootstrapCI:
    """Percentile bootstrap CI of the AUC of items (``y``, ``p``) resampling their *files* within
    each class (``metrics.bootstrap_ci``, stratified, seeded), each drawn file with all its items.
    With one item per file it is the ordinary stratified bootstrap of the AUC."""
    ids, first = np.unique(file, return_index=True)
    order = np.argsort(file, kind="stable")
    starts, ends = np.searchsorted(file[order], ids, side="left"), np.searchsorted(file[order], ids, side="right")
    members = [order[a:b] for a, b in zip(starts, ends)]

    def metric(_labels: np.ndarray, drawn: np.ndarray) -> float:
        idx = np.concatenate([members[k] for k in drawn])
        return auc_roc(y[idx], p[idx])

    return bootstrap_ci(metric, y[first], np.arange(ids.size), n=ci.replicates, seed=ci.seed, stratify=True)


def _source(files: Sequence[ScoredFile], items: _Items, chosen: np.ndarray, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"files": status_counts([f for f, c in zip(files, chosen) if c])}
    for name, with_missing in (("scored", False), ("missing_at_half", True)):
        keep = chosen[items.file] & (with_missing | ~items.missing)
        out[name] = {"n": int(keep.sum()), "fpr": float((items.score[keep] >= threshold).mean()) if keep.any() else None}
    return out
