"""Detection metrics, video aggregation and the bootstrap CI against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_curve as sk_roc_curve

from deepfake_attention.metrics import (
    accuracy,
    aggregate_videos,
    auc_roc,
    average_precision,
    bootstrap_ci,
    classification_report,
    confusion,
    equal_error_rate,
    f1,
    precision,
    recall,
    roc_curve,
    threshold_at_fpr,
    video_arrays,
)

# 3 reals, 3 fakes; at threshold 0.5 predictions are [0, 0, 1 | 0, 1, 1]
Y = [0, 0, 0, 1, 1, 1]
S = [0.1, 0.4, 0.6, 0.35, 0.8, 0.9]


def test_threshold_metrics_by_hand() -> None:
    # tn: 0.1, 0.4; fp: 0.6; fn: 0.35; tp: 0.8, 0.9
    assert confusion(Y, S, 0.5) == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert accuracy(Y, S, 0.5) == pytest.approx(4 / 6)
    assert precision(Y, S, 0.5) == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert recall(Y, S, 0.5) == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert f1(Y, S, 0.5) == pytest.approx(2 / 3)  # 2*2 / (2*2 + 1 + 1)
    # a score exactly at the threshold is fake (score >= threshold)
    assert confusion([0, 1], [0.5, 0.5], 0.5) == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}


def test_zero_division_rules() -> None:
    assert precision([0, 1], [0.1, 0.2], 0.5) == 0.0  # nothing predicted fake
    assert recall([0, 0], [0.1, 0.9], 0.5) == 0.0  # no fakes at all
    assert f1([0, 0], [0.1, 0.2], 0.5) == 0.0
    assert accuracy([0, 0], [0.1, 0.9], 0.5) == 0.5  # one class is fine for threshold metrics


def test_auc_and_average_precision_by_hand() -> None:
    # AUC = P(fake score > real score) over 3 x 3 pairs: 0.35 beats 0.1 only (1), 0.8 and 0.9 beat all (3 + 3)
    assert auc_roc(Y, S) == pytest.approx(7 / 9)
    # ranked: 0.9 F, 0.8 F, 0.6 R, 0.4 R, 0.35 F, 0.1 R; precision at each fake: 1/1, 2/2, 3/5
    assert average_precision(Y, S) == pytest.approx((1 + 1 + 3 / 5) / 3)


def test_eer_exact_crossing() -> None:
    # ROC (thr inf .9 .8 .6 .4 .35 .1): fpr 0 0 0 1/3 2/3 2/3 1, fnr 1 2/3 1/3 1/3 1/3 0 0
    # FPR = FNR = 1/3 exactly at threshold 0.6
    eer = equal_error_rate(Y, S)
    assert eer.eer == pytest.approx(1 / 3)
    assert eer.threshold == pytest.approx(0.6)
    assert (eer.fpr, eer.fnr) == pytest.approx((1 / 3, 1 / 3))


def test_eer_interpolated_on_a_horizontal_segment() -> None:
    # ranked: .9 F, .8 F, .7 R, .6 R, .5 F  (3 fakes, 2 reals)
    # ROC: thr inf .9 .8 .7 .6 .5; fpr 0 0 0 .5 1 1; fnr 1 2/3 1/3 1/3 1/3 0
    # FPR - FNR: -1, -2/3, -1/3, 1/6, ... -> crossing between (0, 1/3) and (.5, 1/3):
    # t = (1/3) / (1/6 + 1/3) = 2/3, EER = 0 + 2/3 * 0.5 = 1/3; threshold = first point past it: 0.7
    eer = equal_error_rate([1, 1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert eer.eer == pytest.approx(1 / 3)
    assert eer.threshold == pytest.approx(0.7)
    assert (eer.fpr, eer.fnr) == pytest.approx((0.5, 1 / 3))


def test_eer_interpolated_on_a_vertical_segment() -> None:
    # ranked: .9 F, .7 R, .6 F, .5 R, .1 R (2 fakes, 3 reals)
    # fpr 0 0 1/3 1/3 2/3 1; fnr 1 .5 .5 0 0 0; diff -1 -.5 -1/6 1/3 ...
    # t = (1/6) / (1/3 + 1/6) = 1/3; EER = 1/3 (fpr constant); FNR there = .5 - .5/3 = 1/3
    eer = equal_error_rate([0, 0, 0, 1, 1], [0.1, 0.5, 0.7, 0.6, 0.9])
    assert eer.eer == pytest.approx(1 / 3)
    assert eer.threshold == pytest.approx(0.6)


def test_eer_against_a_brute_force_reference() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(300), np.ones(300)].astype(int)
    s = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)]
    # reference: the threshold where |FPR - FNR| is smallest over every observed score
    fpr = np.array([(s[y == 0] >= t).mean() for t in s])
    fnr = np.array([(s[y == 1] < t).mean() for t in s])
    best = np.argmin(np.abs(fpr - fnr))
    assert equal_error_rate(y, s).eer == pytest.approx((fpr[best] + fnr[best]) / 2, abs=2 / 300)
    # true EER of two unit normals 1.5 apart: Phi(-0.75)
    assert equal_error_rate(y, s).eer == pytest.approx(norm.cdf(-0.75), abs=0.05)


def test_threshold_at_target_fpr_by_hand() -> None:
    y = [0, 0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.5]
    # budget 0.25 * 4 reals = 1 false positive; reals >= t: t=.3 -> 2, t=.35 -> 1 (0.4 only)
    point = threshold_at_fpr(y, s, 0.25)
    assert point.threshold == pytest.approx(0.35)
    assert (point.fpr, point.tpr) == pytest.approx((0.25, 2 / 3))  # fakes .35 and .5
    assert threshold_at_fpr(y, s, 0.0).threshold == pytest.approx(0.5)  # above every real
    assert threshold_at_fpr(y, s, 1.0).threshold == pytest.approx(0.1)  # everything fake
    # a real is the top score: no observed score lets none through -> just above it
    top = threshold_at_fpr([0, 1], [0.9, 0.1], 0.0)
    assert top.threshold > 0.9 and top.threshold == pytest.approx(0.9) and top.fpr == 0.0


def test_threshold_at_fpr_tie_rule() -> None:
    # two reals tied at 0.5, budget 1: both would pass together, so the threshold moves above them
    point = threshold_at_fpr([0, 0, 0, 0, 1], [0.5, 0.5, 0.1, 0.2, 0.7], 0.25)
    assert point.threshold == pytest.approx(0.7)
    assert point.fpr == 0.0  # below the target, as documented


def test_threshold_at_fpr_matches_sklearn_roc() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(y, 1.0), 1)  # rounded: many ties
    fpr, _, thr = sk_roc_curve(y, s, drop_intermediate=False)
    for target in (0.01, 0.05, 0.1, 0.3):
        expected = thr[np.flatnonzero(fpr <= target + 1e-12)[-1]]
        assert threshold_at_fpr(y, s, target).threshold == pytest.approx(expected)


def test_roc_curve_and_report_are_json_safe() -> None:
    curve = roc_curve(Y, S)
    assert curve.fpr[0] == 0.0 and curve.tpr[-1] == 1.0 and np.isinf(curve.thresholds[0])
    assert curve.to_dict()["thresholds"][0] is None
    report = classification_report(Y, S, 0.5)
    json.dumps(report, allow_nan=False)
    json.dumps(curve.to_dict(), allow_nan=False)
    assert report["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert report["auc_roc"] == pytest.approx(7 / 9)
    assert report["eer"] == pytest.approx(1 / 3)
    assert (report["n"], report["n_real"], report["n_fake"]) == (6, 3, 3)
    assert set(report["at_fpr"]) == {"0.01", "0.05", "0.1"}


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="needs both classes.*fake"):
        auc_roc([1, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="needs both classes.*real"):
        equal_error_rate([0, 0], [0.2, 0.9])
    with pytest.raises(ValueError, match="needs both classes"):
        classification_report([0, 0], [0.2, 0.9])
    with pytest.raises(ValueError, match="different lengths"):
        accuracy([0, 1], [0.2])
    with pytest.raises(ValueError, match="NaN"):
        auc_roc([0, 1], [0.2, float("nan")])
    with pytest.raises(ValueError, match="labels must be 0"):
        auc_roc([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="target_fpr"):
        threshold_at_fpr(Y, S, 1.5)


# -- video aggregation ----------------------------------------------------------------------------
ROWS = [
    # video v1: track a on frames 0-2, track b on frames 1-2
    ("v1", "a", 0, 0.2), ("v1", "a", 1, 0.4), ("v1", "a", 2, 0.9),
    ("v1", "b", 1, 0.3), ("v1", "b", 2, 0.95),
    # video v2: one track
    ("v2", "t", 0, 0.1), ("v2", "t", 1, 0.1), ("v2", "t", 2, 0.1), ("v2", "t", 3, 0.7),
]


def test_video_aggregation_by_hand() -> None:
    # v1: mean a = 1.5/3 = .5, mean b = 1.25/2 = .625 -> max .625; v2: 1.0/4 = .25
    assert aggregate_videos(ROWS) == pytest.approx({"v1": 0.625, "v2": 0.25})
    # medians: a .4, b .625 -> .625; v2 .1
    assert aggregate_videos(ROWS, "track-median-then-max") == pytest.approx({"v1": 0.625, "v2": 0.1})
    # top-2 means: a (.9+.4)/2 = .65, b .625 -> .65; v2 (.7+.1)/2 = .4
    assert aggregate_videos(ROWS, "track-topk-then-max", k=2) == pytest.approx({"v1": 0.65, "v2": 0.4})
    # frame max: f0 .2, f1 max(.4,.3) = .4, f2 max(.9,.95) = .95 -> 1.55/3; v2 .25
    assert aggregate_videos(ROWS, "frame-max-then-mean") == pytest.approx({"v1": 1.55 / 3, "v2": 0.25})
    assert list(aggregate_videos(list(reversed(ROWS)))) == ["v1", "v2"]  # sorted, order-free


def test_video_arrays_align_and_refuse_missing() -> None:
    ids, y, s = video_arrays(ROWS, {"v2": 0, "v1": 1})
    assert ids == ["v1", "v2"] and y.tolist() == [1, 0] and s == pytest.approx([0.625, 0.25])
    with pytest.raises(ValueError, match="without any face row"):
        video_arrays(ROWS, {"v1": 1, "v2": 0, "v3": 1})
    with pytest.raises(ValueError, match="without a label"):
        video_arrays(ROWS, {"v1": 1})


def test_video_aggregation_errors() -> None:
    with pytest.raises(ValueError, match="unknown video aggregation"):
        aggregate_videos(ROWS, "mean")
    with pytest.raises(ValueError, match="repeats video"):
        aggregate_videos(ROWS + [("v1", "a", 0, 0.5)])
    with pytest.raises(ValueError, match="non-finite"):
        aggregate_videos([("v", "t", 0, float("nan"))])
    with pytest.raises(ValueError, match="expected \\(video_id"):
        aggregate_videos([("v", 0, 0.5)])


# -- bootstrap -------------------------------------------------------------------------------------
def test_bootstrap_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = rng.normal(y, 1.0)
    a = bootstrap_ci(auc_roc, y, s, n=200, seed=7, stratify=True)
    b = bootstrap_ci(auc_roc, y, s, n=200, seed=7, stratify=True)
    c = bootstrap_ci(auc_roc, y, s, n=200, seed=8, stratify=True)
    assert a == b and (a.low, a.high) != (c.low, c.high)
    assert a.estimate == pytest.approx(auc_roc(y, s)) and a.low <= a.estimate <= a.high
    json.dumps(a.to_dict(), allow_nan=False)


def test_bootstrap_covers_the_true_value() -> None:
    # coverage of the 95% interval of a mean over 100 simulated data sets of 50 N(0, 1) draws
    covered = 0
    for i in range(100):
        x = np.random.default_rng(np.random.SeedSequence([11, i])).normal(0.0, 1.0, 50)
        ci = bootstrap_ci(np.mean, x, n=200, seed=i)
        covered += ci.low <= 0.0 <= ci.high
    assert 85 <= covered <= 99
    # AUC of two unit normals 1 apart is Phi(1 / sqrt(2)) = 0.760
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    s = np.r_[rng.normal(0, 1, 200), rng.normal(1, 1, 200)]
    ci = bootstrap_ci(auc_roc, y, s, n=300, stratify=True)
    assert ci.low < norm.cdf(1 / np.sqrt(2)) < ci.high
    assert ci.high - ci.low < 0.15


def test_bootstrap_stratified_keeps_class_counts() -> None:
    y = np.array([1, 1] + [0] * 18)
    s = np.linspace(0, 1, 20)
    seen = []

    def positives(y_b: np.ndarray, s_b: np.ndarray) -> float:
        seen.append(int(y_b.sum()))
        return float(s_b.mean())

    bootstrap_ci(positives, y, s, n=50, stratify=True)
    assert set(seen) == {2}
    with pytest.raises(ValueError, match="share their first dimension"):
        bootstrap_ci(auc_roc, y, s[:5])
    with pytest.raises(ValueError, match="stratify must have one group id"):
        bootstrap_ci(auc_roc, y, s, stratify=np.zeros(3))
    with pytest.raises(ValueError, match="must hold integer labels"):
        bootstrap_ci(lambda s_b, y_b: auc_roc(y_b, s_b), s, y, stratify=True)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(auc_roc, y, s, alpha=1.5)
