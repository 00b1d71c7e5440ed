"""Attention-map quality metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_attention.metrics import (
    boundary_map,
    energy_in_mask,
    frame_consistency,
    iou,
    localization_report,
    mask_pearson,
    normalized_entropy,
    pixel_auc,
    pointing_game,
    prior_map,
    sequence_consistency,
    spatial_consistency,
    summarize,
    transform_consistency,
)
from deepfake_attention.metrics.attention import hflip, shift, similarity

# 4x4 forgery mask: the top-left 2x2 block
MASK = np.zeros((4, 4))
MASK[:2, :2] = 1.0
# a map with most energy in the mask: sum = 4 + 2 + 2 + 1 + 1 = 10
MAP = np.array([[4, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float)


def test_entropy_bounds_and_values() -> None:
    assert normalized_entropy(np.ones((4, 4))) == pytest.approx(1.0)  # uniform
    delta = np.zeros((4, 4))
    delta[1, 2] = 3.0
    assert normalized_entropy(delta) == pytest.approx(0.0)  # one pixel
    half = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert normalized_entropy(half) == pytest.approx(np.log(2) / np.log(4))  # two of four pixels
    batch = normalized_entropy(np.stack([np.ones((4, 4)), delta, np.zeros((4, 4))]))
    assert batch.shape == (3,) and batch[:2] == pytest.approx([1.0, 0.0]) and np.isnan(batch[2])
    assert summarize(batch).to_dict() == {"mean": 0.5, "count": 2, "undefined": 1}
    assert 0.0 <= normalized_entropy(np.random.default_rng(0).random((8, 8))) <= 1.0


def test_similarity() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 5)), rng.random((6, 5))
    assert similarity(a, 2 * a + 1) == pytest.approx(1.0)
    assert similarity(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert similarity(np.eye(2), np.fliplr(np.eye(2)), "cosine") == pytest.approx(0.0)
    assert np.isnan(similarity(np.ones((3, 3)), a[:3, :3]))  # constant map: Pearson undefined
    assert np.isnan(similarity(np.zeros((3, 3)), a[:3, :3], "cosine"))


def test_shift_and_flip() -> None:
    x = np.arange(12).reshape(1, 3, 4)
    # out[y, x] = in[y - 1, x + 1]; the uncovered first row / last column repeat the edge
    assert shift(x, 1, -1)[0].tolist() == [[1, 2, 3, 3], [1, 2, 3, 3], [5, 6, 7, 7]]
    assert hflip(x)[0, 0].tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="smaller than the image"):
        shift(x, 3, 0)


def test_transform_consistency() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)

    def pixelwise(x: np.ndarray) -> np.ndarray:  # equivariant: a function of each pixel only
        return x.astype(float).mean(axis=-1)

    def fixed(x: np.ndarray) -> np.ndarray:  # ignores the image: a left-to-right ramp
        return np.broadcast_to(np.arange(16.0), x.shape[:3]).copy()

    assert transform_consistency(pixelwise, images) == pytest.approx([1.0] * 3)
    assert transform_consistency(pixelwise, images, transform="shift", offset=(2, -3)) == pytest.approx([1.0] * 3)
    assert transform_consistency(fixed, images) == pytest.approx([-1.0] * 3)  # ramp vs reversed ramp
    report = spatial_consistency(fixed, images, offsets=[(0, 4)])
    assert report["hflip"].mean == pytest.approx(-1.0)
    assert report["shift(0,4)"].mean == pytest.approx(1.0) and report["shift(0,4)"].count == 3
    with pytest.raises(ValueError, match="images' size"):
        transform_consistency(lambda x: np.zeros((3, 8, 8)), images)
    with pytest.raises(ValueError, match="'hflip' or 'shift'"):
        transform_consistency(pixelwise, images, transform="rotate")


def test_frame_consistency_with_alignment() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((10, 10))
    b = shift(a[None], 1, 2)[0]  # the face moved down 1 and right 2 pixels
    assert frame_consistency(a, b, offset=(1, 2)) == pytest.approx(1.0)
    assert frame_consistency(a, b) < 0.5
    seq = np.stack([a, b, shift(b[None], 1, 2)[0]])
    assert sequence_consistency(seq, [(1, 2), (1, 2)]).mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="need 2 offsets"):
        sequence_consistency(seq, [(1, 2)])


def test_mask_metrics_by_hand() -> None:
    # energy: (4 + 2 + 2 + 0) / 10
    assert energy_in_mask(MAP, MASK) == pytest.approx(0.8)
    # argmax (0, 0) lies in the mask
    assert pointing_game(MAP, MASK) == 1.0
    # map / 4 >= 0.5 at (0,0) (0,1) (1,0): 3 pixels, all in the 4-pixel mask -> 3 / 4
    assert iou(MAP, MASK) == pytest.approx(0.75)
    # threshold 0.25 adds (2,3) and (3,2): intersection 3, union 4 + 2 = 6
    assert iou(MAP, MASK, threshold=0.25) == pytest.approx(0.5)
    # AUC over 4 mask x 12 other pixels: 4 and both 2s beat all 12 (36); 0 ties 10 zeros (5) -> 41/48
    assert pixel_auc(MAP, MASK) == pytest.approx(41 / 48)
    # Pearson: cov = 8/16 - .625 * .25 = .34375; var map = 26/16 - .625^2; var mask = .25 * .75
    assert mask_pearson(MAP, MASK) == pytest.approx(0.34375 / np.sqrt((26 / 16 - 0.625**2) * 0.1875))


def test_pointing_game_tolerance_and_ties() -> None:
    peak = np.zeros((4, 4))
    peak[2, 2] = 1.0  # sqrt(2) pixels from the mask's corner (1, 1)
    assert pointing_game(peak, MASK) == 0.0
    assert pointing_game(peak, MASK, tolerance=1.0) == 0.0
    assert pointing_game(peak, MASK, tolerance=1.5) == 1.0
    two = np.zeros((4, 4))
    two[0, 0] = two[3, 3] = 1.0  # one of two tied maxima inside
    assert pointing_game(two, MASK) == 0.5
    assert pointing_game(np.ones((4, 4)), MASK) == pytest.approx(4 / 16)  # chance level: mask area


def test_undefined_cases_are_nan() -> None:
    empty = np.zeros((4, 4))
    for metric in (energy_in_mask, pointing_game, iou, pixel_auc, mask_pearson):
        assert np.isnan(metric(MAP, empty)), metric.__name__
    assert np.isnan(energy_in_mask(np.zeros((4, 4)), MASK))
    assert iou(np.ones((4, 4)), MASK) == 0.0  # a constant map predicts nothing
    with pytest.raises(ValueError, match="non-negative"):
        energy_in_mask(-MAP, MASK)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        energy_in_mask(MAP, 2 * MASK)
    with pytest.raises(ValueError, match="resize the maps"):
        energy_in_mask(np.ones((8, 8)), MASK)


def test_prior_and_boundary() -> None:
    masks = np.stack([MASK, np.zeros((4, 4)), np.ones((4, 4)), MASK])
    prior = prior_map(masks)
    assert prior[0, 0] == pytest.approx(0.75) and prior[3, 3] == pytest.approx(0.25)
    soft = np.array([[0.0, 0.25], [0.5, 1.0]])
    assert boundary_map(soft) == pytest.approx(np.array([[0.0, 0.75], [1.0, 0.0]]))  # 4 M (1 - M)
    assert boundary_map(MASK).max() == 0.0  # a hard mask has no boundary by this formula


def test_localization_report_on_fakes_with_baseline() -> None:
    far = np.zeros((4, 4))
    far[3, 3] = 1.0
    maps = np.stack([MAP, far, MAP])
    masks = np.stack([MASK, MASK, MASK])
    report = localization_report(maps, masks, labels=[1, 1, 0], prior=prior_map(np.stack([MASK, MASK])))
    json.dumps(report, allow_nan=False)
    # the real (third sample) is left out: pointing game (1 + 0) / 2
    assert report["pointing_game"]["map"] == {"mean": 0.5, "count": 2, "undefined": 0}
    assert report["energy"]["map"]["mean"] == pytest.approx((0.8 + 0.0) / 2)
    # the prior (= the mask itself here) is a perfect baseline
    assert report["iou"]["baseline"]["mean"] == pytest.approx(1.0)
    assert report["energy"]["baseline"]["mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="prior must be one"):
        localization_report(maps, masks, prior=masks)
    with pytest.raises(ValueError, match="no fakes"):
        localization_report(maps, masks, labels=[0, 0, 0])
