"""Training augmentations: colour jitter (deterministic per generator, global, mask untouched), degradations, and the affine jitter (areas, shifts and borders checked against direct geometry)."""

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


def _disc(size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) <= radius**2).astype(np.float32)


def _centroid(weights: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(xx * weights).sum(), (yy * weights).sum()]) / weights.sum()


def test_affine_scales_areas_by_the_square_of_the_factor_whatever_the_rotation() -> None:
    from deepfake_attention.data.augment import RandomAffine

    mask = _disc(128, (63.5, 63.5), 20)
    image = np.repeat((mask * 200).astype(np.uint8)[..., None], 3, axis=2)
    out, warped = RandomAffine(p=1.0, scale=(1.5, 1.5), rotate=180, shift=0.0)(image, mask, np.random.default_rng(3))
    assert warped.sum() / mask.sum() == pytest.approx(2.25, rel=0.02)
    assert np.allclose(_centroid(warped), (63.5, 63.5), atol=0.3)  # about the centre
    assert np.allclose(_centroid(out[..., 0].astype(float)), _centroid(warped), atol=0.3)  # image and mask move together


def test_affine_shift_stays_within_its_range_and_moves_image_and_mask_alike() -> None:
    from deepfake_attention.data.augment import RandomAffine

    mask = _disc(100, (49.5, 49.5), 10)
    image = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    shifts = []
    for seed in range(20):
        out, warped = RandomAffine(p=1.0, scale=(1.0, 1.0), rotate=0.0, shift=0.1)(image, mask, np.random.default_rng(seed))
        moved = _centroid(warped) - 49.5
        assert np.all(np.abs(moved) <= 10.0 + 0.3) and warped.sum() == pytest.approx(mask.sum(), rel=0.02)
        assert np.allclose(_centroid(out[..., 0].astype(float)), _centroid(warped), atol=0.3)
        shifts.append(moved)
    assert np.ptp(np.array(shifts), axis=0).min() > 8  # it does move, both ways


def test_affine_fills_what_comes_into_view_as_the_crop_border_says() -> None:
    from deepfake_attention.data.augment import RandomAffine

    image = np.full((40, 40, 3), 200, dtype=np.uint8)
    shrink = dict(p=1.0, scale=(0.5, 0.5), rotate=0.0, shift=0.0)
    constant, mask = RandomAffine(border="constant", **shrink)(image, np.ones((40, 40), np.float32), np.random.default_rng(0))
    assert constant[0, 0].tolist() == [0, 0, 0] and constant[20, 20].tolist() == [200, 200, 200]
    assert mask[0, 0] == 0 and mask[20, 20] == pytest.approx(1.0)
    replicate, _ = RandomAffine(border="replicate", **shrink)(image, None, np.random.default_rng(0))
    assert np.all(replicate == 200)


def test_affine_is_pure_optional_and_validated() -> None:
    from deepfake_attention.data.augment import RandomAffine

    image, mask = random_rgb(32, 32), np.zeros((32, 32), np.float32)
    a, _ = RandomAffine(p=1.0)(image, mask, np.random.default_rng([5, 1]))
    b, _ = RandomAffine(p=1.0)(image, mask, np.random.default_rng([5, 1]))
    assert np.array_equal(a, b) and a.shape == image.shape and a.dtype == np.uint8 and not np.array_equal(a, image)
    assert RandomAffine(p=0.0)(image, mask, np.random.default_rng(0))[0] is image
    for bad in (dict(p=1.5), dict(scale=(1.2, 1.1)), dict(rotate=-1.0), dict(shift=0.6), dict(border="wrap")):
        with pytest.raises(ValueError, match="RandomAffine"):
            RandomAffine(**bad)


def test_training_config_adds_the_jitter_only_when_asked() -> None:
    from deepfake_attention.data.augment import RandomAffine
    from deepfake_attention.train.config import DataSection, TrainConfig
    from deepfake_attention.train.data import training_transform

    def kinds(cfg: TrainConfig) -> list[type]:
        return [type(step) for step in training_transform(cfg).transforms]

    assert RandomAffine not in kinds(TrainConfig())  # the default keeps the first wave's augmentations exactly
    jitter = [step for step in training_transform(TrainConfig(data=DataSection(affine_prob=0.4, crop_border="reflect"))).transforms
              if isinstance(step, RandomAffine)]
    assert len(jitter) == 1 and jitter[0].p == 0.4 and jitter[0].border == "reflect"
    with pytest.raises(ValueError, match="affine_scale"):
        TrainConfig(data=DataSection(affine_prob=0.4, affine_scale=[0.9]))
    with pytest.raises(ValueError, match="RandomAffine.p"):
        TrainConfig(data=DataSection(affine_prob=2.0))
