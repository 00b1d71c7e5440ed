"""Calibration of P(fake): temperature scaling, affine (Platt) scaling, ECE, Brier score and
reliability-diagram data.

Temperature scaling (Guo et al., ICML 2017) divides the logits by one scalar ``T`` fitted on a
calibration split by minimising the negative log-likelihood of ``softmax(logits / T)``; it never
changes which class wins, so accuracy and AUC are untouched. Affine scaling (Platt, 1999) adds an
offset: ``P(fake) = sigmoid((z_fake - z_real) / T + offset)``, for a model that leans towards one
class; it keeps the order of the scores too. Either can be fitted over groups of rows (a person in
a video, whose score is the mean of their frames' P(fake)), so that what is calibrated is the
score a user sees.

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
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, softmax

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


def apply_affine(logits: np.ndarray, temperature: float, offset: float) -> np.ndarray:
    """P(fake) = ``sigmoid((logits[:, 1] - logits[:, 0]) / T + offset)`` as a float64 [N] array (2 classes)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"affine scaling is for 2-class (real, fake) logits [N, 2], got shape {z.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return expit((z[:, 1] - z[:, 0]) / temperature + offset)


def group_index(groups: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    """[n] integers 0..G-1 numbering ``groups`` (any hashable labels, one per row) in order of
    first appearance; None makes every row its own group."""
    if groups is None:
        return np.arange(n)
    if len(groups) != n:
        raise ValueError(f"need one group per row: {n} rows, {len(groups)} groups")
    first: dict[Any, int] = {}
    return np.array([first.setdefault(g, len(first)) for g in groups], dtype=np.int64)


def group_means(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean of ``values`` within each group of :func:`group_index`'s ``index``: [G]."""
    return np.bincount(index, weights=values) / np.bincount(index)


@dataclass(frozen=True)
class AffineFit:
    """A fitted ``P(fake) = sigmoid((z_fake - z_real) / temperature + offset)`` with the NLL of the
    calibration split's groups before (T = 1, offset 0) and after.

    ``groups`` counts what the NLL was taken over (rows, or groups of rows scored by the mean of
    their P(fake)); ``at_bound``: the optimum lies on a bound of T or of the offset."""

    temperature: float
    offset: float
    nll_before: float
    nll_after: float
    bounds: tuple[float, float]
    at_bound: bool
    groups: int

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "offset": self.offset, "nll_before": self.nll_before, "nll_after": self.nll_after,
                "bounds": list(self.bounds), "at_bound": self.at_bound, "groups": self.groups}


def fit_affine(logits: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | np.ndarray | None = None, bounds: tuple[float, float] = (0.5, 5.0),
               offset_bound: float = 10.0) -> AffineFit:
    """Fit ``T`` in ``bounds`` and ``offset`` in ``[-offset_bound, offset_bound]`` minimising the NLL.

    ``logits``: [N, 2] of the calibration split; ``y``: [N] labels; ``groups``: [N] labels of the
    groups rows belong to (one class per group), each group scored by the mean of its rows' P(fake).
    Without groups this is logistic regression on the logit gap (convex); with groups it is not
    convex in general, so L-BFGS-B starts from T = 1 and from the temperature-only fit and keeps the
    better optimum."""
    low, high = float(bounds[0]), float(bounds[1])
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    if not offset_bound > 0:
        raise ValueError(f"offset_bound must be > 0, got {offset_bound}")
    z, labels = _check_logits(logits, y)
    if z.shape[1] != 2:
        raise ValueError(f"affine scaling is for 2-class (real, fake) logits, got {z.shape[1]} classes")
    gap = z[:, 1] - z[:, 0]
    index = group_index(groups, z.shape[0])
    counts = np.bincount(index)
    target = group_means(labels.astype(np.float64), index)
    if not np.isin(target, (0.0, 1.0)).all():
        raise ValueError("a group holds rows of both classes; every group must be all real or all fake")
    eps = 1e-12

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        slope, offset = params
        s = expit(slope * gap + offset)
        p = np.clip(group_means(s, index), eps, 1 - eps)
        loss = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))
        d_p = -(target / p - (1 - target) / (1 - p)) / len(p)  # dLoss / dp per group
        d_s = d_p[index] * s * (1 - s) / counts[index]          # dLoss / d(slope * gap + offset) per row
        return float(loss), np.array([np.sum(d_s * gap), np.sum(d_s)])

    limits = [(1 / high, 1 / low), (-offset_bound, offset_bound)]
    start_t = fit_temperature(z, labels, bounds=bounds).temperature
    fits = [minimize(objective, np.array([1 / t, 0.0]), jac=True, method="L-BFGS-B", bounds=limits) for t in {1.0 if low <= 1 <= high else low, start_t}]
    best = min(fits, key=lambda f: f.fun)
    slope, offset = (float(v) for v in best.x)
    tol = 1e-6
    at_bound = min(slope - limits[0][0], limits[0][1] - slope) <= tol or offset_bound - abs(offset) <= tol
    return AffineFit(temperature=1 / slope, offset=offset, nll_before=objective(np.array([1.0, 0.0]))[0], nll_after=float(best.fun),
                     bounds=(low, high), at_bound=bool(at_bound), groups=len(counts))


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


def calibration_report(logits: np.ndarray, y: np.ndarray, temperature: float, *, offset: float = 0.0, n_bins: int = 15) -> dict[str, Any]:
    """ECE, Brier and NLL of a 2-class ``logits`` set before (T = 1) and after temperature scaling,
    with ``offset`` after an affine one: ``P(fake) = sigmoid(gap / T + offset)`` (:func:`fit_affine`).

    Fit ``temperature`` on a separate calibration split (:func:`fit_temperature`) and report on
    the test split: ``{"temperature", "before": {...}, "after": {...}}`` with keys ``ece``,
    ``brier``, ``nll`` and ``reliability`` (:class:`ReliabilityDiagram` dicts).
    """
    z, labels = _check_logits(logits, y)
    if z.shape[1] != 2:
        raise ValueError(f"calibration_report is for 2-class (real, fake) logits, got {z.shape[1]} classes")
    shifted = z.copy()
    shifted[:, 1] += float(offset) * float(temperature)  # softmax(shifted / T)[fake] = sigmoid(gap / T + offset)
    out: dict[str, Any] = {"temperature": float(temperature)}
    for name, scores, t in (("before", z, 1.0), ("after", shifted, float(temperature))):
        p = apply_temperature(scores, t)
        diagram = reliability_diagram(labels, p, n_bins=n_bins)
        out[name] = {"ece": diagram.ece, "brier": brier_score(labels, p), "nll": nll(scores, labels, t), "reliability": diagram.to_dict()}
    return out
