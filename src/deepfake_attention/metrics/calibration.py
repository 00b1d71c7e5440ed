"""Calibration of P(fake): temperature scaling, ECE, Brier score and reliability-diagram data.

Temperature scaling (Guo et al., ICML 2017) divides the logits by one scalar ``T`` fitted on a
calibration split by minimising the negative log-likelihood of ``softmax(logits / T)``; it never
changes which class wins, so accuracy and AUC are untouched.

ECE here is the *positive-class* (P(fake)) ECE by default: samples are binned by P(fake) and
each bin compares the mean P(fake) with the fraction of fakes. The top-label ECE of Guo et al.
(confidence = max(p, 1 - p), accuracy = prediction correct) is available with
``kind="top_label"``. Bins are equal-width on [0, 1]: bin k holds ``k/n <= p < (k+1)/n`` and the
last bin also holds p = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from .classification import check_binary

ECEKind = Literal["positive", "top_label"]


def _check_logits(logits: Sequence[Sequence[float]] | np.ndarray, y: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(y)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be [N, C] with C >= 2 (real, fake), got shape {z.shape}")
    if labels.ndim != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(f"need one label per row of logits: logits {z.shape}, labels {labels.shape}")
    if z.shape[0] == 0:
        raise ValueError("logits are empty; pass at least one sample")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or infinite values; drop or fix those samples first")
    if not np.isin(labels, np.arange(z.shape[1])).all():
        raise ValueError(f"labels must be class indices in [0, {z.shape[1] - 1}], got {np.unique(labels)[:10].tolist()}")
    return z, labels.astype(np.int64)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` (natural log)."""
    z, labels = _check_logits(logits, y)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return float(-log_softmax(z / temperature, axis=1)[np.arange(z.shape[0]), labels].mean())


def apply_temperature(logits: np.ndarray, temperature: float, *, positive_class: int = 1) -> np.ndarray:
    """P(fake) = ``softmax(logits / T)[:, positive_class]`` as a float64 [N] array."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be [N, C] with C >= 2, got shape {z.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(z / temperature, axis=1)[:, positive_class]


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature with the calibration split's NLL before (T = 1) and after.

    ``at_bound`` is true when the optimum lies on an end of ``bounds``: widen them or check the
    calibration split (too small, or a model that is not over/under-confident in one direction).
    """

    temperature: float
    nll_before: float
    nll_after: float
    bounds: tuple[float, float]
    at_bound: bool

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "nll_before": self.nll_before, "nll_after": self.nll_after, "bounds": list(self.bounds), "at_bound": self.at_bound}


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, bounds: tuple[float, float] = (0.5, 5.0), xatol: float = 1e-5) -> TemperatureFit:
    """Fit ``T`` in ``bounds`` minimising the NLL of ``softmax(logits / T)`` (bounded Brent search).

    ``logits``: [N, C] pre-softmax scores of the calibration split; ``y``: [N] class indices.
    The NLL is convex in 1/T, hence unimodal in T, so the 1-D bounded search finds the global
    minimum on the interval.
    """
    low, high = float(bounds[0]), float(bounds[1])
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    z, labels = _check_logits(logits, y)
    rows = np.arange(z.shape[0])

    def objective(t: float) -> float:
        return float(-log_softmax(z / t, axis=1)[rows, labels].mean())

    result = minimize_scalar(objective, bounds=(low, high), method="bounded", options={"xatol": xatol})
    t_best = float(result.x)
    # the bounded search never evaluates the ends exactly; compare them explicitly
    for end in (low, high):
        if objective(end) < objective(t_best):
            t_best = end
    at_bound = min(t_best - low, high - t_best) <= 10 * xatol
    return TemperatureFit(temperature=t_best, nll_before=objective(1.0), nll_after=objective(t_best), bounds=(low, high), at_bound=bool(at_bound))


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin data of a reliability diagram; empty bins have ``None`` accuracy and confidence.

    ``accuracy`` is the fraction of fakes (``kind="positive"``) or of correct predictions
    (``kind="top_label"``) in the bin; ``confidence`` the mean P(fake) or mean max(p, 1 - p).
    """

    kind: str
    edges: list[float]
    centers: list[float]
    accuracy: list[float | None]
    confidence: list[float | None]
    counts: list[int]

    @property
    def ece(self) -> float:
        """sum_k (n_k / N) |accuracy_k - confidence_k| over non-empty bins."""
        total = sum(self.counts)
        return float(sum(n / total * abs(a - c) for a, c, n in zip(self.accuracy, self.confidence, self.counts) if n > 0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges": self.edges, "centers": self.centers, "accuracy": self.accuracy, "confidence": self.confidence, "counts": self.counts, "ece": self.ece}


def reliability_diagram(y: np.ndarray, probs: np.ndarray, *, n_bins: int = 15, kind: ECEKind = "positive") -> ReliabilityDiagram:
    """Bin P(fake) into ``n_bins`` equal-width bins on [0, 1] (see the module docstring)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if kind not in ("positive", "top_label"):
        raise ValueError(f"kind must be 'positive' or 'top_label', got {kind!r}")
    labels, p = check_binary(y, probs)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1], got range [{p.min()}, {p.max()}]; pass P(fake), not logits")
    if kind == "positive":
        conf, hit = p, labels.astype(np.float64)
    else:  # top-label confidences lie in [0.5, 1]: the lower half of the bins stays empty
        conf = np.maximum(p, 1.0 - p)
        hit = ((p >= 0.5).astype(np.int64) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sum_conf = np.bincount(index, weights=conf, minlength=n_bins)
    sum_hit = np.bincount(index, weights=hit, minlength=n_bins)
    return ReliabilityDiagram(
        kind=kind,
        edges=edges.tolist(),
        centers=((edges[:-1] + edges[1:]) / 2).tolist(),
        accuracy=[float(h / n) if n else None for h, n in zip(sum_hit, counts)],
        confidence=[float(c / n) if n else None for c, n in zip(sum_conf, counts)],
        counts=counts.astype(int).tolist(),
    )


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, *, n_bins: int = 15, kind: ECEKind = "positive") -> float:
    """ECE of P(fake) with ``n_bins`` equal-width bins (positive-class by default)."""
    return reliability_diagram(y, probs, n_bins=n_bins, kind=kind).ece


def brier_score(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error between P(fake) and the label: ``mean((p - y)^2)``."""
    labels, p = check_binary(y, probs)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1], got range [{p.min()}, {p.max()}]; pass P(fake), not logits")
    return float(np.mean((p - labels) ** 2))


def calibration_report(logits: np.ndarray, y: np.ndarray, temperature: float, *, n_bins: int = 15) -> dict[str, Any]:
    """ECE, Brier and NLL of a 2-class ``logits`` set before (T = 1) and after temperature scaling.

    Fit ``temperature`` on a separate calibration split (:func:`fit_temperature`) and report on
    the test split: ``{"temperature", "before": {...}, "after": {...}}`` with keys ``ece``,
    ``brier``, ``nll`` and ``reliability`` (:class:`ReliabilityDiagram` dicts).
    """
    z, labels = _check_logits(logits, y)
    if z.shape[1] != 2:
        raise ValueError(f"calibration_report is for 2-class (real, fake) logits, got {z.shape[1]} classes")
    out: dict[str, Any] = {"temperature": float(temperature)}
    for name, t in (("before", 1.0), ("after", float(temperature))):
        p = apply_temperature(z, t)
        diagram = reliability_diagram(labels, p, n_bins=n_bins)
        out[name] = {"ece": diagram.ece, "brier": brier_score(labels, p), "nll": nll(z, labels, t), "reliability": diagram.to_dict()}
    return out
