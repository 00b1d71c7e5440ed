"""Temperature scaling, ECE, Brier and reliability data against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_attention.metrics import apply_temperature, brier_score, calibration_report, expected_calibration_error, fit_temperature, reliability_diagram
from deepfake_attention.metrics.calibration import nll

# 5 bins: [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]
Y = [0, 0, 1, 0, 1, 1, 1, 0]
P = [0.05, 0.15, 0.3, 0.45, 0.55, 0.85, 0.95, 0.9]


def _calibrated_logits(temperature: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model whose calibrated logit gap d makes y ~ Bernoulli(sigmoid(d)), scaled by T."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-d))).astype(int)
    return temperature * np.stack([np.zeros(n), d], axis=1), y


def test_brier_by_hand() -> None:
    # (0.1^2 + 0.2^2 + 0.4^2 + 0.3^2) / 4 = (0.01 + 0.04 + 0.16 + 0.09) / 4
    assert brier_score([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3]) == pytest.approx(0.075)


def test_positive_class_ece_by_hand() -> None:
    # bin0: .05,.15 (0,0): conf .1, frac fake 0 -> .1 x 2/8
    # bin1: .3 (1): conf .3, frac 1 -> .7 x 1/8
    # bin2: .45 (0), .55 (1): conf .5, frac .5 -> 0
    # bin3: empty
    # bin4: .85 (1), .95 (1), .9 (0): conf .9, frac 2/3 -> .2333 x 3/8
    # ECE = (.2 + .7 + .7) / 8 = 0.2
    assert expected_calibration_error(Y, P, n_bins=5) == pytest.approx(0.2)
    diagram = reliability_diagram(Y, P, n_bins=5)
    assert diagram.counts == [2, 1, 2, 0, 3]
    assert diagram.centers == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert diagram.accuracy[:3] == pytest.approx([0.0, 1.0, 0.5]) and diagram.accuracy[3] is None
    assert diagram.accuracy[4] == pytest.approx(2 / 3)
    assert diagram.confidence[4] == pytest.approx(0.9)
    json.dumps(diagram.to_dict(), allow_nan=False)


def test_top_label_ece_by_hand() -> None:
    # confidence max(p, 1-p): .95 .85 .7 .55 .55 .85 .95 .9; correct (p >= .5 -> fake): 1 1 0 1 1 1 1 0
    # bin2 [.4,.6): .55 .55 both correct: |1 - .55| x 2/8
    # bin3 [.6,.8): .7 wrong: |0 - .7| x 1/8
    # bin4: .95 .85 .85 .95 .9, 4 of 5 correct: |.8 - .9| x 5/8
    # ECE = (.9 + .7 + .5) / 8 = 0.2625
    assert expected_calibration_error(Y, P, n_bins=5, kind="top_label") == pytest.approx(0.2625)


def test_bin_edges() -> None:
    # p = 1 belongs to the last bin, p = 0 to the first; a perfectly calibrated 0/1 set has ECE 0
    assert reliability_diagram([0, 1], [0.0, 1.0], n_bins=10).counts == [1] + [0] * 8 + [1]
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_apply_temperature() -> None:
    # softmax([0, 2] / 2)[1] = sigmoid(1)
    assert apply_temperature(np.array([[0.0, 2.0]]), 2.0)[0] == pytest.approx(1 / (1 + np.exp(-1)))
    # nll of a single sample = -log sigmoid(1)
    assert nll(np.array([[0.0, 2.0]]), np.array([1]), 2.0) == pytest.approx(np.log1p(np.exp(-1)))


@pytest.mark.parametrize("true_t", [0.7, 2.5])
def test_temperature_recovers_a_known_t(true_t: float) -> None:
    logits, y = _calibrated_logits(true_t, 20000, seed=0)
    fit = fit_temperature(logits, y)
    assert fit.temperature == pytest.approx(true_t, rel=0.05)
    assert fit.nll_after <= fit.nll_before and not fit.at_bound
    # the optimum agrees with a brute-force grid search of the same objective
    grid = np.linspace(0.5, 5.0, 901)
    best = grid[np.argmin([nll(logits, y, t) for t in grid])]
    assert fit.temperature == pytest.approx(best, abs=0.01)


def test_temperature_at_bound_is_flagged() -> None:
    logits, y = _calibrated_logits(8.0, 4000, seed=1)
    fit = fit_temperature(logits, y, bounds=(0.5, 5.0))
    assert fit.temperature == pytest.approx(5.0) and fit.at_bound
    json.dumps(fit.to_dict())


def test_calibration_report_improves_after_scaling() -> None:
    cal_logits, cal_y = _calibrated_logits(3.0, 5000, seed=2)
    test_logits, test_y = _calibrated_logits(3.0, 5000, seed=3)
    t = fit_temperature(cal_logits, cal_y).temperature
    report = calibration_report(test_logits, test_y, t)
    json.dumps(report, allow_nan=False)
    assert report["after"]["ece"] < report["before"]["ece"] / 2
    assert report["after"]["brier"] < report["before"]["brier"]
    assert report["after"]["nll"] < report["before"]["nll"]


def test_calibration_errors() -> None:
    with pytest.raises(ValueError, match="not logits"):
        brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="not logits"):
        expected_calibration_error([0, 1], [-0.1, 0.5])
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        fit_temperature(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="one label per row"):
        fit_temperature(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="0 < low < high"):
        fit_temperature(np.zeros((4, 2)), np.zeros(4), bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_diagram([0, 1], [0.2, 0.4], n_bins=0)
    with pytest.raises(ValueError, match="kind"):
        reliability_diagram([0, 1], [0.2, 0.4], kind="max")
    with pytest.raises(ValueError, match="2-class"):
        calibration_report(np.zeros((2, 3)), np.array([0, 1]), 1.0)
