"""Detector options: mixed precision keeps Grad-CAM++ in fp32 and scores close to full precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfake_attention import Detector

from .conftest import random_rgb


def test_bf16_autocast_on_cpu_matches_fp32(tiny_checkpoint: Path) -> None:
    crops = [random_rgb(40, 40, seed=k) for k in range(3)]
    exact = Detector.load(tiny_checkpoint, device="cpu", amp="off").predict(crops)
    mixed = Detector.load(tiny_checkpoint, device="cpu", amp="bf16").predict(crops)
    for a, b in zip(exact, mixed):
        assert b.gradcampp.dtype == np.float32 and np.isfinite(b.gradcampp).all()
        assert abs(a.prob_fake - b.prob_fake) < 0.02
        assert np.corrcoef(a.attention.ravel(), b.attention.ravel())[0, 1] > 0.99


def test_amp_auto_is_off_on_cpu_and_bad_modes_are_refused(tiny_checkpoint: Path) -> None:
    assert Detector.load(tiny_checkpoint, device="cpu").amp_dtype is None
    with pytest.raises(ValueError, match="amp must be one of"):
        Detector.load(tiny_checkpoint, device="cpu", amp="fp8")
