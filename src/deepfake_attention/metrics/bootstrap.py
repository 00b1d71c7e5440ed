"""Percentile bootstrap confidence intervals for any metric, seeded and reproducible."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class BootstrapCI:
    """``estimate`` on the full data and the percentile interval [``low``, ``high``].

    ``n_valid`` replicates gave a number (replicates where the metric returned NaN are left
    out of the percentiles and counted in ``n - n_valid``).
    """

    estimate: float
    low: float
    high: float
    alpha: float
    n: int
    n_valid: int
    seed: int
    stratified: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _indices(rng: np.random.Generator, size: int, groups: list[np.ndarray] | None) -> np.ndarray:
    if groups is None:
        return rng.integers(0, size, size=size)
    return np.concatenate([g[rng.integers(0, g.size, size=g.size)] for g in groups])


def bootstrap_ci(metric_fn: Callable[..., float], *arrays: Any, n: int = 1000, alpha: float = 0.05, seed: int = 0, stratify: bool | np.ndarray = False) -> BootstrapCI:
    """Percentile bootstrap CI of ``metric_fn(*arrays)``, resampling rows of all arrays jointly.

    ``arrays`` share their first dimension (e.g. ``y, scores``). Replicate ``b`` draws its rows
    with ``default_rng(SeedSequence([seed, b]))``, so the interval depends only on the seed.
    ``stratify`` resamples within each group, keeping group sizes: ``True`` groups by the first
    array (the labels), or pass a [N] array of group ids. Use it for metrics that need both
    classes (AUC, EER), which would otherwise fail on a one-class resample.
    The interval is ``[q(alpha/2), q(1 - alpha/2)]`` of the replicates (numpy's linear
    percentile).
    """
    if not arrays:
        raise ValueError("pass the metric's input arrays after metric_fn, e.g. bootstrap_ci(auc_roc, y, scores)")
    if n < 1:
        raise ValueError(f"n (replicates) must be >= 1, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    data = [np.asarray(a) for a in arrays]
    size = data[0].shape[0] if data[0].ndim else 0
    if size == 0 or any(a.ndim == 0 or a.shape[0] != size for a in data):
        raise ValueError(f"arrays must be non-empty and share their first dimension, got shapes {[a.shape for a in data]}")
    groups = None
    if stratify is not False:
        key = data[0] if stratify is True else np.asarray(stratify)
        if stratify is True and not (key.dtype == bool or np.issubdtype(key.dtype, np.integer)):
            raise ValueError(f"stratify=True groups by the first array, which must hold integer labels, got {key.dtype}; pass the labels first or stratify=<labels>")
        if key.shape[:1] != (size,):
            raise ValueError(f"stratify must have one group id per row ({size}), got shape {key.shape}")
        groups = [np.flatnonzero(key == g) for g in np.unique(key)]
    estimate = float(metric_fn(*data))
    stats = np.empty(n)
    for b in range(n):
        idx = _indices(np.random.default_rng(np.random.SeedSequence([seed, b])), size, groups)
        stats[b] = float(metric_fn(*[a[idx] for a in data]))
    valid = stats[~np.isnan(stats)]
    if valid.size == 0:
        raise ValueError("the metric was NaN on every bootstrap replicate; check its input (stratify=True for two-class metrics)")
    low, high = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return BootstrapCI(estimate=estimate, low=float(low), high=float(high), alpha=float(alpha), n=int(n), n_valid=int(valid.size), seed=int(seed), stratified=groups is not None)
