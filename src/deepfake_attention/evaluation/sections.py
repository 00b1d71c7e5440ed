"""The sections of ``metrics.json`` written by :func:`deepfake_attention.evaluation.run.evaluate`.

Each function turns arrays collected while scoring (labels 0 = real / 1 = fake, P(fake) at the
checkpoint's temperature, logits, per-sample map scores) into one JSON-safe dict, using the
metric functions of :mod:`deepfake_attention.metrics`. Metrics that need both classes (AUC,
EER, ROC, a threshold at a target FPR) are ``None`` on a one-class set, with the reason in the
section's ``unavailable`` sentence; what can still be computed (accuracy, confusion,
calibration) is reported. The faithfulness sections run the :class:`~.detector.Detector` on
the kept subset (deletion/insertion, the model-randomisation check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterator, Sequence

import numpy as np
from scipy.special import expit, logit

from ..detector import Detector
from ..metrics import (
    accuracy,
    auc_roc,
    average_precision,
    bootstrap_ci,
    calibration_report,
    cascading_layers,
    classification_report,
    confusion,
    deletion_insertion,
    f1,
    faithfulness_report,
    fit_affine,
    fit_temperature,
    localization_scores,
    precision,
    randomization_check,
    randomize_layers,
    recall,
    roc_curve,
    summarize,
    threshold_at_fpr,
    video_arrays,
)
from .options import CALIBRATION_FITS, CalibrationFit

TEMPERATURE_BOUNDS = (0.5, 5.0)
FPR_TARGETS = (0.01, 0.05, 0.1)
VIDEO_METHODS = ("track-mean-then-max", "frame-max-then-mean")
LOCALIZATION_TARGETS = ("mask", "boundary")


def one_class_reason(y: np.ndarray, what: str) -> str | None:
    """A sentence saying why ``what`` cannot be computed on ``y``, or None when both classes are present."""
    labels = np.asarray(y)
    if labels.size == 0:
        return f"{what} is unavailable: no samples"
    if labels.min() == labels.max():
        only = "fake" if labels[0] == 1 else "real"
        return f"{what} needs reals and fakes, but all {labels.size} evaluated samples are {only}"
    return None


def jsonable(value: Any) -> Any:
    """Plain-Python copy of ``value`` for ``json``: numpy scalars and arrays become floats, ints
    and lists, tuples become lists, paths strings, and NaN or infinite floats become ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _rates(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    c = confusion(y, p, threshold)
    reals, fakes = c["tn"] + c["fp"], c["tp"] + c["fn"]
    return {"fpr": c["fp"] / reals if reals else None, "tpr": c["tp"] / fakes if fakes else None, "accuracy": accuracy(y, p, threshold)}


def operating_point(y: np.ndarray, p: np.ndarray, target_fpr: float, calibration: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """The threshold reaching ``target_fpr``: chosen on the calibration split when one is given
    (and has both classes), else on the evaluation set itself (labelled optimistic); with the
    FPR, TPR and accuracy it achieves on the evaluation set."""
    out: dict[str, Any] = {"target_fpr": float(target_fpr), "chosen_on": None, "threshold": None, "label": None, "evaluation": None}
    if calibration is not None and one_class_reason(calibration[0], "") is None:
        point = threshold_at_fpr(calibration[0], calibration[1], target_fpr)
        out.update(chosen_on="calibration", label="chosen on the calibration split", calibration=point.to_dict())
    elif one_class_reason(y, "") is None:
        point = threshold_at_fpr(y, p, target_fpr)
        out.update(chosen_on="evaluation", label="chosen on the evaluation set itself (optimistic: no calibration split)")
    else:
        out["unavailable"] = one_class_reason(y, "a threshold at a target FPR")
        return out
    out["threshold"] = point.threshold
    out["evaluation"] = _rates(y, p, point.threshold)
    return out


def classification_section(y: np.ndarray, p: np.ndarray, threshold: float, *, target_fpr: float, bootstrap: int, seed: int,
                           calibration: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Detection metrics at ``threshold`` (metrics.classification_report), the ROC points, an
    optional stratified bootstrap 95% CI of the AUC, and the threshold at ``target_fpr``."""
    reason = one_class_reason(y, "AUC, average precision, EER and the ROC curve")
    if reason is None:
        targets = tuple(sorted({*FPR_TARGETS, float(target_fpr)}))
        out = classification_report(y, p, threshold, fpr_targets=targets)
        out["roc"] = roc_curve(y, p).to_dict()
        ci = bootstrap_ci(auc_roc, y, p, n=bootstrap, seed=seed, stratify=True) if bootstrap > 0 else None
        out["auc_ci"] = None if ci is None else ci.to_dict()
    else:
        out = {
            "n": int(y.size), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()), "threshold": float(threshold),
            "accuracy": accuracy(y, p, threshold), "precision": precision(y, p, threshold), "recall": recall(y, p, threshold),
            "f1": f1(y, p, threshold), "confusion": confusion(y, p, threshold), "auc_roc": None, "average_precision": None,
            "eer": None, "eer_threshold": None, "at_fpr": None, "roc": None, "auc_ci": None, "unavailable": reason,
        }
    out["operating_point"] = operating_point(y, p, target_fpr, calibration)
    return out


def equivalent_threshold(threshold: float, t_from: float, t_to: float, offset: float = 0.0) -> float:
    """The P(fake) threshold under ``P(fake) = sigmoid(gap / t_to + offset)`` that makes the same
    decisions as ``threshold`` at temperature ``t_from`` (two classes: P(fake) = sigmoid(gap / T))."""
    if threshold <= 0.0 or threshold >= 1.0:
        return float(threshold)
    return float(expit(t_from * logit(threshold) / t_to + offset))


def calibration_section(y: np.ndarray, logits: np.ndarray, temperature: float, threshold: float,
                        calibration: tuple[np.ndarray, np.ndarray] | None = None, fit: CalibrationFit = "temperature") -> dict[str, Any]:
    """ECE, Brier score, NLL and reliability data at the checkpoint's ``temperature``; with a
    calibration split (labels, logits), the ``fit`` made on it (a temperature bounded to
    :data:`TEMPERATURE_BOUNDS`, or with ``affine`` that temperature and an offset) and the
    evaluation set before (checkpoint T) and after (the fitted scaling).

    ``threshold_equivalent`` is the P(fake) threshold under the fitted scaling that keeps every
    decision of ``threshold`` under the checkpoint's T (neither scaling reorders scores).
    """
    if fit not in CALIBRATION_FITS:
        raise ValueError(f"fit must be one of {', '.join(CALIBRATION_FITS)}, got {fit!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature  # so calibration_report's T = 1 is the checkpoint's T
    out: dict[str, Any] = {"temperature": float(temperature), "checkpoint": calibration_report(z, y, 1.0)["before"], "fitted": None}
    if calibration is None:
        return out
    fitter = fit_affine if fit == "affine" else fit_temperature
    found = fitter(calibration[1], calibration[0], bounds=TEMPERATURE_BOUNDS)
    offset = float(getattr(found, "offset", 0.0))
    report = calibration_report(z, y, found.temperature / temperature, offset=offset)
    out["fitted"] = {
        "kind": fit, "temperature": found.temperature, "offset": offset, "fit": found.to_dict(), "before": report["before"], "after": report["after"],
        "threshold_equivalent": equivalent_threshold(threshold, temperature, found.temperature, offset),
    }
    return out


def _auc_or_none(y: np.ndarray, p: np.ndarray) -> float | None:
    return auc_roc(y, p) if one_class_reason(y, "") is None else None


def video_section(video_ids: Sequence[str], frames: Sequence[int], y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any] | None:
    """Frame-level and video-level metrics over the samples that carry a video id and a frame.

    Each video is one face track here (a face crop per frame), so ``track-mean-then-max`` is
    the mean over its frames; the k-th crop of a repeated (video, frame) is track k (e.g. the
    several fakes `synth` makes per real frame). ``frame-max-then-mean`` is computed too.
    Returns None when no sample has both a video id and a frame.
    """
    keep = [i for i, (v, f) in enumerate(zip(video_ids, frames)) if v and f is not None]
    if not keep:
        return None
    yk, pk = y[keep], p[keep]
    first: dict[str, int] = {}
    mixed = {video_ids[i] for i in keep if first.setdefault(video_ids[i], int(y[i])) != int(y[i])}
    keys = [f"{video_ids[i]} [{'fake' if y[i] else 'real'}]" if video_ids[i] in mixed else video_ids[i] for i in keep]
    labels: dict[Hashable, int] = {key: int(y[i]) for key, i in zip(keys, keep)}
    out: dict[str, Any] = {"frames": len(keep), "videos": len(labels), "frame_auc": _auc_or_none(yk, pk), "methods": {}}
    if mixed:
        out["note"] = (f"{len(mixed)} video ids hold both real and fake frames (as `synth` writes them: fakes made from the real frames); "
                       "each (video, label) pair is scored as a video of its own")
    # several crops of one (video, frame) (e.g. several fakes per real frame) are tracks 0, 1, ... of it
    seen: dict[tuple[Hashable, int], int] = {}
    rows = []
    for key, i in zip(keys, keep):
        track = seen.get((key, frames[i]), 0)
        seen[(key, frames[i])] = track + 1
        rows.append((key, track, frames[i], p[i]))
    for method in VIDEO_METHODS:
        _, vy, vp = video_arrays(rows, labels, method)
        out["methods"][method] = {
            "auc": _auc_or_none(vy, vp), "average_precision": average_precision(vy, vp) if one_class_reason(vy, "") is None else None,
            "accuracy": accuracy(vy, vp, threshold), "n_real": int((vy == 0).sum()), "n_fake": int((vy == 1).sum()),
        }
    if one_class_reason(yk, "") is not None:
        out["unavailable"] = one_class_reason(yk, "frame- and video-level AUC")
    return out


def robustness_section(y: np.ndarray, clean: np.ndarray, perturbed: dict[str, tuple[str, float, np.ndarray]], threshold: float) -> dict[str, Any]:
    """AUC, accuracy at ``threshold`` and mean P(fake) per class for the clean set and for every
    perturbation level (``{name: (kind, level, probs)}``)."""
    def entry(p: np.ndarray) -> dict[str, Any]:
        return {
            "auc": _auc_or_none(y, p), "accuracy": accuracy(y, p, threshold),
            "mean_prob_real": float(p[y == 0].mean()) if (y == 0).any() else None,
            "mean_prob_fake": float(p[y == 1].mean()) if (y == 1).any() else None,
        }

    out: dict[str, Any] = {"clean": entry(clean), "levels": {name: {"kind": kind, "level": float(level), **entry(p)} for name, (kind, level, p) in perturbed.items()}}
    reason = one_class_reason(y, "AUC under perturbations")
    if reason:
        out["unavailable"] = reason
    return out


@dataclass
class MaskMean:
    """The mean-mask baseline: running means of 8-bit masks M and of their boundaries 4M(1 - M)
    (metrics.prior_map of each), from integer sums, so batching and order cannot change it."""

    levels: np.ndarray | int = 0
    boundary: np.ndarray | int = 0
    count: int = 0

    def add(self, gray: np.ndarray) -> None:
        """Add uint8 masks [S, S] or [B, S, S]."""
        g = np.asarray(gray, dtype=np.int64).reshape(-1, *np.shape(gray)[-2:])
        self.levels = self.levels + g.sum(axis=0)
        self.boundary = self.boundary + (4 * g * (255 - g)).sum(axis=0)
        self.count += g.shape[0]

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean mask, mean boundary), float64 [S, S] in [0, 1]."""
        return self.levels / (255.0 * self.count), self.boundary / (255.0**2 * self.count)


@dataclass
class LocalizationScores:
    """Per-sample mask metrics (metrics.attention.localization_scores) collected batch by batch,
    for each map (``"attention"``, ``"gradcampp"``, ``"baseline"``) and target (mask, boundary)."""

    values: dict[tuple[str, str], dict[str, list[np.ndarray]]] = field(default_factory=dict)

    def add(self, map_name: str, target: str, maps: np.ndarray, masks: np.ndarray) -> None:
        """Score ``maps`` [B, H, W] against ``masks`` [B, H, W] (or one [H, W] map for all)."""
        if len(masks) == 0:
            return
        maps = np.broadcast_to(maps, masks.shape) if np.ndim(maps) == 2 else maps
        slot = self.values.setdefault((map_name, target), {})
        for metric, scores in localization_scores(maps, masks).items():
            slot.setdefault(metric, []).append(np.atleast_1d(scores))

    def report(self, map_name: str, target: str) -> dict[str, dict[str, Any]]:
        """``{metric: {"map": Summary, "baseline": Summary}}``, as metrics.attention.localization_report."""
        mine, base = self.values.get((map_name, target), {}), self.values.get(("baseline", target), {})
        return {
            metric: {"map": summarize(np.concatenate(values)).to_dict(), "baseline": summarize(np.concatenate(base[metric])).to_dict() if metric in base else None}
            for metric, values in mine.items()
        }


# -- faithfulness ----------------------------------------------------------------------------------
DELETION_STEPS = 16


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_probs(detector: Detector, images: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """P(fake) [N] of uint8 RGB crops (no maps), scored in batches of ``batch_size``."""
    return np.array([p.prob_fake for chunk in batches(list(images), batch_size) for p in detector.predict(chunk, cam=False)], dtype=np.float64)


@dataclass(frozen=True)
class Example:
    """One scored crop kept for the report's grid (resized crop, maps at its size)."""

    path: str
    label: int
    prob_fake: float
    crop: np.ndarray
    attention: np.ndarray
    gradcampp: np.ndarray


def drop_and_increase(full: Sequence[float], explained: Sequence[float], threshold: float) -> dict[str, Any]:
    """Average Drop % and % Increase in Confidence (metrics.faithfulness_report) over correctly
    classified fakes, whose P(fake) on the full crop is ``full`` and on the explanation image
    (crop x map, pixel space) is ``explained``."""
    if len(full) == 0:
        return {"average_drop": None, "increase_in_confidence": None, "count": 0}
    return faithfulness_report(np.asarray(full), np.asarray(explained), np.ones(len(full), dtype=np.int64), threshold)


def random_map(seed: int, index: int, size: int) -> np.ndarray:
    """A uniform random [size, size] map for sample ``index``: the chance-level explanation."""
    return np.random.default_rng(np.random.SeedSequence([seed, 2, index])).random((size, size))


def causal_section(detector: Detector, indices: Sequence[int], crops: np.ndarray, maps: dict[str, np.ndarray], *, seed: int, batch_size: int,
                   progress: bool | None = None) -> dict[str, Any]:
    """Deletion and insertion curves (RISE; metrics.deletion_insertion, default baselines) of
    each map in ``maps`` ({name: [B, H, W]}) and of a random map, on uint8 ``crops`` [B, H, W, 3]."""
    maps = {**maps, "random": np.stack([random_map(seed, i, crops.shape[1]) for i in indices])}
    out: dict[str, Any] = {"count": len(indices), "steps": DELETION_STEPS}
    for name, values in maps.items():
        out[name] = {
            mode: deletion_insertion(lambda batch: predict_probs(detector, batch, batch_size), crops, values, mode=mode,
                                     steps=DELETION_STEPS, batch_size=batch_size, progress=progress).to_dict()
            for mode in ("deletion", "insertion")
        }
    return out


def randomization_section(detector: Detector, crops: np.ndarray, maps: dict[str, np.ndarray], *, seed: int, batch_size: int) -> dict[str, Any]:
    """Adebayo et al.'s model-randomisation check: Spearman and SSIM between the trained model's
    maps and those of copies with re-initialised weights (the classifier only, then every layer;
    metrics.randomize_layers / cascading_layers). Low similarity = the map depends on the weights."""
    layers = cascading_layers(detector.model)
    out: dict[str, Any] = {"count": int(crops.shape[0])}
    for variant, names in (("classifier", layers[:1]), ("all_layers", layers)):
        clone = Detector(randomize_layers(detector.model, names, seed=seed), detector.config, detector.device)
        preds = [p for chunk in batches(list(crops), batch_size) for p in clone.predict(chunk, cam=True)]
        randomized = {"attention": np.stack([p.attention for p in preds]), "gradcampp": np.stack([p.gradcampp for p in preds])}
        out[variant] = {"layers": list(names)} | {
            name: {k: v.to_dict() for k, v in randomization_check(maps[name], randomized[name].astype(np.float64)).items()} for name in maps
        }
    return out
