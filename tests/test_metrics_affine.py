"""Affine (Platt) scaling: rows against scikit-learn's unpenalised logistic regression, groups of
rows against a brute-force grid of the same objective, and the errors it raises."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from deepfake_attention.metrics import apply_affine, fit_affine, fit_temperature


def _leaning_logits(temperature: float, offset: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose gap d makes y ~ Bernoulli(sigmoid(d / T + offset))."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 2.0 * temperature, n)
    y = (rng.random(n) < expit(d / temperature + offset)).astype(int)
    return np.stack([np.zeros(n), d], axis=1), y


def test_rows_match_logistic_regression_and_recover_the_truth() -> None:
    logits, y = _leaning_logits(2.5, -0.8, 20000, seed=0)
    fit = fit_affine(logits, y)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logits[:, 1:] - logits[:, :1], y)
    assert 1 / fit.temperature == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    assert fit.offset == pytest.approx(reference.intercept_[0], abs=1e-4)
    assert fit.temperature == pytest.approx(2.5, rel=0.05) and fit.offset == pytest.approx(-0.8, abs=0.1)
    assert fit.nll_after < fit.nll_before and not fit.at_bound and fit.groups == 20000
    # the offset is what temperature alone cannot fit: its NLL is higher
    assert fit.nll_after < fit_temperature(logits, y).nll_after - 0.01
    json.dumps(fit.to_dict())


def test_groups_are_scored_by_the_mean_of_their_rows() -> None:
    rng = np.random.default_rng(1)
    logits, y = _leaning_logits(1.5, 0.6, 600, seed=1)
    sizes = rng.integers(1, 6, 600)  # each row's unit holds 1-5 frames around it
    frames = np.repeat(logits, sizes, axis=0) + np.stack([np.zeros(sizes.sum()), rng.normal(0, 0.5, sizes.sum())], axis=1)
    groups = np.repeat([f"unit-{i}" for i in range(600)], sizes)
    fit = fit_affine(frames, np.repeat(y, sizes), groups=groups)
    assert fit.groups == 600

    members = [np.flatnonzero(groups == f"unit-{i}") for i in range(600)]

    def grouped_nll(t: float, b: float) -> float:
        probs = apply_affine(frames, t, b)
        p = np.clip(np.array([probs[rows].mean() for rows in members]), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    temps, offsets = np.linspace(1.0, 2.5, 31), np.linspace(0.0, 1.2, 25)
    grid = np.array([[grouped_nll(t, b) for b in offsets] for t in temps])
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    assert fit.nll_after <= grid.min() + 1e-9
    assert fit.temperature == pytest.approx(temps[i], abs=0.1) and fit.offset == pytest.approx(offsets[j], abs=0.1)
    assert fit.nll_after == pytest.approx(grouped_nll(fit.temperature, fit.offset), abs=1e-9)
    # without groups every row is its own group
    assert fit_affine(frames, np.repeat(y, sizes)).groups == sizes.sum()


def test_apply_affine_by_hand_and_bounds_are_flagged() -> None:
    # sigmoid((3 - 1) / 2 + 0.5) = sigmoid(1.5)
    assert apply_affine(np.array([[1.0, 3.0]]), 2.0, 0.5)[0] == pytest.approx(1 / (1 + np.exp(-1.5)))
    logits, y = _leaning_logits(1.0, 4.0, 4000, seed=2)
    fit = fit_affine(logits, y, offset_bound=2.0)
    assert fit.offset == pytest.approx(2.0) and fit.at_bound


def test_affine_errors() -> None:
    logits, y = _leaning_logits(1.0, 0.0, 10, seed=3)
    with pytest.raises(ValueError, match="both classes"):
        fit_affine(logits, y, groups=["same"] * 10)
    with pytest.raises(ValueError, match="one group per row"):
        fit_affine(logits, y, groups=["a"] * 3)
    with pytest.raises(ValueError, match="2-class"):
        fit_affine(np.zeros((4, 3)), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="2-class"):
        apply_affine(np.zeros((4, 3)), 1.0, 0.0)
    with pytest.raises(ValueError, match="bounds"):
        fit_affine(logits, y, bounds=(2.0, 1.0))
