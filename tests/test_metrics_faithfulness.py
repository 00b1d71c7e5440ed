"""Average Drop / Increase in Confidence, deletion / insertion and the randomisation sanity check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from deepfake_attention.explain.cam import GradCAMPlusPlus
from deepfake_attention.metrics import average_drop, cascading_layers, deletion_insertion, explanation_images, faithfulness_report, increase_in_confidence, randomization_check, randomize_layers
from deepfake_attention.metrics.faithfulness import spearman_similarity, ssim_similarity
from deepfake_attention.model import AttentionMapModel


def test_average_drop_and_increase_by_hand() -> None:
    y = [0.8, 0.5, 0.9, 0.6]
    o = [0.4, 0.6, 0.95, 0.3]
    # drops: .4/.8 = .5, 0 (rose), 0 (rose), .3/.6 = .5 -> 100 * 1.0 / 4
    assert average_drop(y, o) == pytest.approx(25.0)
    # rises: .5 < .6 and .9 < .95 -> 100 * 2 / 4
    assert increase_in_confidence(y, o) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="must be > 0"):
        average_drop([0.0, 0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="one explanation-image probability"):
        average_drop([0.5], [0.1, 0.2])


def test_faithfulness_report_keeps_correct_fakes_only() -> None:
    full = [0.8, 0.5, 0.9, 0.6, 0.9, 0.3]
    expl = [0.4, 0.6, 0.95, 0.3, 0.1, 0.9]
    labels = [1, 1, 1, 1, 0, 1]  # a real (0.9) and a missed fake (0.3) are left out
    report = faithfulness_report(full, expl, labels, threshold=0.5)
    assert report == pytest.approx({"average_drop": 25.0, "increase_in_confidence": 50.0, "count": 4})
    assert faithfulness_report([0.2], [0.1], [1])["count"] == 0


def test_explanation_images_in_pixel_space() -> None:
    images = np.full((1, 2, 2, 3), 200, dtype=np.uint8)
    images[0, 1, 1] = 3
    maps = np.array([[[0.5, 1.0], [0.0, 0.25]]])
    out = explanation_images(images, maps)
    assert out.dtype == np.uint8
    # 200 * .5 = 100, 200 * 1 = 200, 0, round(3 * .25 = .75) = 1
    assert out[0, ..., 0].tolist() == [[100, 200], [0, 1]]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        explanation_images(images, maps * 4)
    with pytest.raises(ValueError, match="uint8 RGB"):
        explanation_images(images.astype(float), maps)


# an 8x8 image whose "evidence" is the top-left 4x4 block (16 of 64 pixels)
REGION = np.zeros((8, 8), dtype=bool)
REGION[:4, :4] = True
IMAGE = np.where(REGION[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)


def _evidence(images: np.ndarray) -> np.ndarray:
    """Toy model: the fraction of the evidence block still at full intensity."""
    return images[:, :4, :4, 0].reshape(len(images), -1).mean(axis=1) / 255.0


def test_deletion_and_insertion_on_a_toy_model() -> None:
    images = np.stack([IMAGE, IMAGE])
    maps = np.stack([REGION.astype(float), 1.0 - REGION])  # perfect map, inverted map
    deletion = deletion_insertion(_evidence, images, maps, mode="deletion", steps=4, batch_size=3)
    # 16 pixels per step; the perfect map deletes the block at step 1: [1, 0, 0, 0, 0]
    # -> AUC = trapezoid over fractions 0, .25, .5, .75, 1 = .25 * (1 + 0) / 2 = 0.125
    assert deletion.curves.tolist() == [[1, 0, 0, 0, 0], [1, 1, 1, 1, 0]]
    assert deletion.auc == pytest.approx([0.125, 0.875])  # inverted: .25 * (1+1)/2 * 3 + .25 * 1/2
    insertion = deletion_insertion(_evidence, images, maps, mode="insertion", steps=4, baseline="zero")
    assert insertion.curves.tolist() == [[0, 1, 1, 1, 1], [0, 0, 0, 0, 1]]
    assert insertion.auc == pytest.approx([0.875, 0.125])
    # 3 steps of 64 pixels: floor(64k/3) = 0, 21, 42, 64 -> the block is gone after 21 pixels
    three = deletion_insertion(_evidence, images[:1], maps[:1], steps=3)
    assert three.fractions == pytest.approx([0, 21 / 64, 42 / 64, 1])
    assert three.auc == pytest.approx([0.5 * 21 / 64])
    json.dumps(deletion.to_dict(), allow_nan=False)


def test_deletion_insertion_defaults_and_errors() -> None:
    flat = np.full((1, 8, 8, 3), 90, dtype=np.uint8)
    maps = np.random.default_rng(0).random((1, 8, 8))
    # insertion starts from a blurred copy by default: of a flat image, the image itself
    insertion = deletion_insertion(_evidence, flat, maps, mode="insertion", steps=2)
    assert insertion.curves == pytest.approx(np.full((1, 3), 90 / 255))
    with pytest.raises(ValueError, match="one probability per image"):
        deletion_insertion(lambda x: np.zeros((len(x), 2)), flat, maps, steps=2)
    with pytest.raises(ValueError, match="mode"):
        deletion_insertion(_evidence, flat, maps, mode="both")
    with pytest.raises(ValueError, match="baseline"):
        deletion_insertion(_evidence, flat, maps, baseline="noise")
    with pytest.raises(ValueError, match="must match the images"):
        deletion_insertion(_evidence, flat, maps[:, :4], steps=2)


def test_rank_similarities_against_references() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 9, 9))
    b = np.round(a + rng.normal(0, 0.3, a.shape).clip(0), 1)  # ties in b
    expected = [spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    assert spearman_similarity(a, b) == pytest.approx(expected)
    norm = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    assert ssim_similarity(a, b) == pytest.approx([structural_similarity(norm(x), norm(y), data_range=1.0, win_size=7) for x, y in zip(a, b)])
    assert ssim_similarity(a, 3 * a) == pytest.approx([1.0] * 3)  # identical after min-max
    with pytest.raises(ValueError, match="at least 3 x 3"):
        ssim_similarity(a[:, :2, :2], b[:, :2, :2])


def test_randomize_layers_is_a_seeded_copy() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    assert cascading_layers(model) == ["3", "1", "0"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = randomize_layers(model, ["3"], seed=1)
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG is untouched
    b = randomize_layers(model, ["3"], seed=1)
    c = randomize_layers(model, ["3"], seed=2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # original intact
    assert torch.equal(a[3].weight, b[3].weight) and not torch.equal(a[3].weight, c[3].weight)
    assert not torch.equal(a[3].weight, model[3].weight) and torch.equal(a[0].weight, model[0].weight)
    with pytest.raises(ValueError, match="no module named"):
        randomize_layers(model, ["9"])


def test_sanity_check_with_grad_cam_plus_plus() -> None:
    torch.manual_seed(0)
    model = AttentionMapModel(feature_dim=16).eval()
    images = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)

    def maps_of(net: nn.Module):
        cam = GradCAMPlusPlus(net)
        return lambda x: cam(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0, 1).numpy()

    same = randomization_check(maps_of(model), maps_of(model), images)
    assert same["spearman"].mean == pytest.approx(1.0) and same["ssim"].mean == pytest.approx(1.0)
    layers = cascading_layers(model)
    randomized = randomize_layers(model, layers[: len(layers) // 2], seed=0).eval()
    result = randomization_check(maps_of(model), maps_of(randomized), images)
    assert result["spearman"].count == 2 and result["spearman"].mean < 0.99
    with pytest.raises(ValueError, match="pass images"):
        randomization_check(maps_of(model), np.zeros((2, 12, 12)))
