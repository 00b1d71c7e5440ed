"""bench/ablation.py's statistics: the paired difference of two arms scored on the same test faces."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from .conftest import load_bench

ablation = load_bench("ablation")


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    return {"y": y, "p": p, "threshold": np.float64(0.5)}


def test_paired_difference_cancels_what_both_arms_share() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    difficulty = rng.normal(0.0, 1.0, y.size)  # per face, shared by both arms: most of each arm's own CI
    base = difficulty + 0.8 * y
    better = base + 0.3 * y + rng.normal(0.0, 0.1, y.size)
    runs, seed_runs = [_scores(y, better)], [_scores(y, base)]
    diff = ablation.paired_difference(runs, seed_runs, "auc", 300, seed=0)
    assert diff["estimate"] == pytest.approx(roc_auc_score(y, better) - roc_auc_score(y, base), abs=1e-12)
    assert 0.0 < diff["low"] < diff["estimate"] < diff["high"]
    # unpaired, each arm's CI is wider than the paired CI of their difference
    alone = [ablation.two_level_ci(r, "auc", 300, seed=0) for r in (runs, seed_runs)]
    assert all(ci["high"] - ci["low"] > diff["high"] - diff["low"] for ci in alone)
    same = ablation.paired_difference(seed_runs, seed_runs, "auc", 50, seed=0)
    assert same == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    with pytest.raises(ValueError, match="same test faces"):
        ablation.paired_difference([_scores(y[::-1].copy(), better)], seed_runs, "auc", 10, seed=0)
