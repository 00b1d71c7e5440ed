"""Binary detection metrics: labels ``y`` in {0, 1} with 1 = fake (the positive class).

``scores`` are P(fake) or any score that grows with "fake"; a sample is predicted fake iff
``score >= threshold`` (DESIGN.md's rule), so a sample exactly at the threshold is fake.

Ranking metrics (AUC, average precision, EER, the ROC curve, the threshold at a target FPR)
need both classes; with one class present they raise ``ValueError`` rather than return NaN, so
an empty or one-sided evaluation set is never reported as a number. Threshold metrics
(accuracy, precision, recall, F1, confusion) work with one class; a ratio whose denominator is
0 (precision with no predicted fakes, recall with no fakes) is 0.0, as scikit-learn's
``zero_division=0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve

ArrayLike = Sequence[float] | np.ndarray


def check_binary(y: ArrayLike, scores: ArrayLike, *, both_classes: bool = False, what: str = "this metric") -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(y, scores)`` as 1-D int64 / float64 arrays of equal, non-zero length.

    Raises ``ValueError`` for mismatched lengths, an empty set, labels outside {0, 1}, NaN or
    infinite scores, and (``both_classes=True``) a set holding only one class.
    """
    y_arr = np.asarray(y)
    s_arr = np.asarray(scores, dtype=np.float64)
    if y_arr.ndim != 1 or s_arr.ndim != 1:
        raise ValueError(f"y and scores must be 1-D, got shapes {y_arr.shape} and {s_arr.shape}")
    if y_arr.shape[0] != s_arr.shape[0]:
        raise ValueError(f"y and scores have different lengths ({y_arr.shape[0]} vs {s_arr.shape[0]}); pass one score per label")
    if y_arr.shape[0] == 0:
        raise ValueError("y and scores are empty; pass at least one sample")
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got values {np.unique(y_arr)[:10].tolist()}")
    if not np.isfinite(s_arr).all():
        raise ValueError(f"scores contain {int(np.isnan(s_arr).sum())} NaN and {int(np.isinf(s_arr).sum())} infinite values; drop or fix those samples first")
    y_arr = y_arr.astype(np.int64)
    if both_classes and y_arr.min() == y_arr.max():
        only = "fake (1)" if y_arr[0] == 1 else "real (0)"
        raise ValueError(f"{what} needs both classes, but every one of the {y_arr.size} labels is {only}; evaluate on a set with reals and fakes")
    return y_arr, s_arr


def _check_threshold(threshold: float) -> float:
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    return float(threshold)


def confusion(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, int]:
    """The 2x2 confusion matrix at ``threshold`` as ``{"tn", "fp", "fn", "tp"}`` counts."""
    y_arr, s_arr = check_binary(y, scores)
    pred = s_arr >= _check_threshold(threshold)
    pos = y_arr == 1
    return {"tn": int((~pred & ~pos).sum()), "fp": int((pred & ~pos).sum()), "fn": int((~pred & pos).sum()), "tp": int((pred & pos).sum())}


def _ratio(num: int, den: int) -> float:
    return float(num / den) if den > 0 else 0.0


def accuracy(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of samples whose prediction (``score >= threshold``) equals the label."""
    c = confusion(y, scores, threshold)
    return _ratio(c["tp"] + c["tn"], sum(c.values()))


def precision(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """TP / (TP + FP); 0.0 when nothing is predicted fake."""
    c = confusion(y, scores, threshold)
    return _ratio(c["tp"], c["tp"] + c["fp"])


def recall(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """TP / (TP + FN), the true-positive rate; 0.0 when there are no fakes."""
    c = confusion(y, scores, threshold)
    return _ratio(c["tp"], c["tp"] + c["fn"])


def f1(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall; 0.0 if both are 0."""
    c = confusion(y, scores, threshold)
    return _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])


def auc_roc(y: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn); ``ValueError`` unless both classes are present."""
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="AUC-ROC")
    return float(roc_auc_score(y_arr, s_arr))


def average_precision(y: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the precision-recall step curve, scikit-learn)."""
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="average precision")
    return float(average_precision_score(y_arr, s_arr))


@dataclass(frozen=True)
class RocCurve:
    """ROC points, thresholds decreasing; ``thresholds[0]`` is +inf (nothing predicted fake)."""

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the +inf threshold becomes ``None``."""
        return {"fpr": self.fpr, "tpr": self.tpr, "thresholds": [t if np.isfinite(t) else None for t in self.thresholds]}


def roc_curve(y: ArrayLike, scores: ArrayLike, *, drop_intermediate: bool = True) -> RocCurve:
    """ROC curve points for plotting (scikit-learn's ``roc_curve``, positive label 1)."""
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="the ROC curve")
    fpr, tpr, thr = _sk_roc_curve(y_arr, s_arr, drop_intermediate=drop_intermediate)
    return RocCurve(fpr.tolist(), tpr.tolist(), thr.astype(np.float64).tolist())


@dataclass(frozen=True)
class EqualErrorRate:
    """The EER and the operating point that goes with it.

    ``eer`` is where FPR = FNR on the ROC curve, interpolated linearly between the two ROC
    points that bracket the crossing. ``threshold`` is the threshold of the first ROC point at
    or past the crossing, i.e. the highest threshold with FPR >= FNR (a real threshold you can
    apply; no threshold reaches the interpolated point exactly unless a ROC point lies on it);
    ``fpr`` and ``fnr`` are the rates at that threshold.
    """

    eer: float
    threshold: float
    fpr: float
    fnr: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def equal_error_rate(y: ArrayLike, scores: ArrayLike) -> EqualErrorRate:
    """The equal error rate (see :class:`EqualErrorRate` for the interpolation and threshold rule)."""
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="the EER")
    fpr, tpr, thr = _sk_roc_curve(y_arr, s_arr, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # non-decreasing, -1 at the (0, 0) point, +1 at (1, 1)
    diff[np.abs(diff) < 1e-12] = 0.0  # 1/3 - (1 - 2/3) is not exactly 0 in floating point
    i = int(np.argmax(diff >= 0.0))  # first point at or past the crossing; i >= 1 as diff[0] = -1
    if diff[i] == 0.0:
        eer = float(fpr[i])
    else:
        t = -diff[i - 1] / (diff[i] - diff[i - 1])
        eer = float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
    return EqualErrorRate(eer=eer, threshold=float(thr[i]), fpr=float(fpr[i]), fnr=float(fnr[i]))


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold chosen for a target false-positive rate, with the rates it achieves on the data."""

    target_fpr: float
    threshold: float
    fpr: float
    tpr: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def threshold_at_fpr(y: ArrayLike, scores: ArrayLike, target_fpr: float) -> OperatingPoint:
    """The smallest threshold whose FPR on the negatives (reals) is <= ``target_fpr``.

    Candidates are the observed scores (a threshold between two observed scores classifies the
    data like the next observed score above it) plus one value just above the highest score,
    used when even that score would let too many reals through. Tie rule: predictions are
    ``score >= threshold``, so reals tied at a score are counted as false positives together;
    when a tie straddles the budget the achieved FPR is below the target. Matches the smallest
    finite threshold of scikit-learn's ``roc_curve`` with ``fpr <= target``.
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr}")
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="a threshold at a target FPR")
    neg, pos = np.sort(s_arr[y_arr == 0]), s_arr[y_arr == 1]
    candidates = np.append(np.unique(s_arr), np.nextafter(s_arr.max(), np.inf))
    # number of reals scoring >= each candidate (neg sorted ascending)
    fp = neg.size - np.searchsorted(neg, candidates, side="left")
    ok = fp <= target_fpr * neg.size * (1.0 + 1e-12)
    threshold = float(candidates[int(np.argmax(ok))])  # candidates ascend, fp descends: first ok is smallest
    return OperatingPoint(target_fpr=float(target_fpr), threshold=threshold, fpr=float((neg >= threshold).mean()), tpr=float((pos >= threshold).mean()))


def classification_report(y: ArrayLike, scores: ArrayLike, threshold: float = 0.5, *, fpr_targets: Sequence[float] = (0.01, 0.05, 0.1)) -> dict[str, Any]:
    """Every metric above in one JSON-safe dict (needs both classes).

    Keys: ``n``, ``n_real``, ``n_fake``, ``threshold``, ``accuracy``, ``precision``, ``recall``,
    ``f1``, ``confusion`` ({tn, fp, fn, tp}), ``auc_roc``, ``average_precision``, ``eer``,
    ``eer_threshold`` and ``at_fpr``: ``{str(target): OperatingPoint.to_dict()}``.
    """
    y_arr, s_arr = check_binary(y, scores, both_classes=True, what="classification_report (AUC, EER)")
    eer = equal_error_rate(y_arr, s_arr)
    return {
        "n": int(y_arr.size),
        "n_real": int((y_arr == 0).sum()),
        "n_fake": int((y_arr == 1).sum()),
        "threshold": _check_threshold(threshold),
        "accuracy": accuracy(y_arr, s_arr, threshold),
        "precision": precision(y_arr, s_arr, threshold),
        "recall": recall(y_arr, s_arr, threshold),
        "f1": f1(y_arr, s_arr, threshold),
        "confusion": confusion(y_arr, s_arr, threshold),
        "auc_roc": auc_roc(y_arr, s_arr),
        "average_precision": average_precision(y_arr, s_arr),
        "eer": eer.eer,
        "eer_threshold": eer.threshold,
        "at_fpr": {str(t): threshold_at_fpr(y_arr, s_arr, t).to_dict() for t in fpr_targets},
    }
