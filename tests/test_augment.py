"""Whole-image colour jitter: deterministic per generator, global (not local), mask untouched."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_attention.data.augment import ColourJitter, Compose
from deepfake_attention.data.datasets import HorizontalFlip

from .conftest import random_rgb


def test_jitter_is_a_pure_function_of_the_generator() -> None:
    image, mask = random_rgb(32, 32), np.random.default_rng(1).random((32, 32)).astype(np.float32)
    a, ma = ColourJitter(p=1.0)(image, mask, np.random.default_rng([0, 1, 2]))
    b, mb = ColourJitter(p=1.0)(image, mask, np.random.default_rng([0, 1, 2]))
    c, _ = ColourJitter(p=1.0)(image, mask, np.random.default_rng([0, 1, 3]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert ma is mask and a.dtype == np.uint8 and a.shape == image.shape


def test_jitter_changes_the_whole_image_alike() -> None:
    flat = np.full((16, 16, 3), (120, 90, 60), dtype=np.uint8)
    out, _ = ColourJitter(p=1.0, hue=0.0)(flat, None, np.random.default_rng(4))
    assert len({tuple(px) for px in out.reshape(-1, 3)}) == 1  # a uniform image stays uniform
    assert ColourJitter(p=0.0)(flat, None, np.random.default_rng(4))[0] is flat
    with pytest.raises(ValueError, match="hue in"):
        ColourJitter(hue=0.9)


def test_compose_chains_with_one_generator() -> None:
    image = random_rgb(8, 8)
    chain = Compose([HorizontalFlip(p=1.0), ColourJitter(p=0.0)])
    out, _ = chain(image, None, np.random.default_rng(0))
    assert np.array_equal(out, image[:, ::-1])


def test_degrade_blurs_and_adds_noise_deterministically() -> None:
    from deepfake_attention.data.augment import Degrade

    image = random_rgb(24, 24)
    a, _ = Degrade(p=1.0)(image, None, np.random.default_rng(7))
    b, _ = Degrade(p=1.0)(image, None, np.random.default_rng(7))
    assert np.array_equal(a, b) and not np.array_equal(a, image)
    assert np.abs(np.diff(a.astype(int), axis=1)).mean() < np.abs(np.diff(image.astype(int), axis=1)).mean()  # smoother than noise input
    assert Degrade(p=0.0)(image, None, np.random.default_rng(7))[0] is image
