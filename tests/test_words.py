"""Explanations in words: on self-blended fakes with known masks the regions named are right, and
left/right are the person's (a mirrored face swaps them)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_attention import Detector
from deepfake_attention.analysis.image import describe_face
from deepfake_attention.crops import crop_geometry
from deepfake_attention.data.faces import FaceCrop
from deepfake_attention.data.landmarks import landmarks_available
from deepfake_attention.data.masks import boundary, feather, other_mask
from deepfake_attention.data.synth import sample_rng, self_blend
from deepfake_attention.data.synth_ops import blend, change_appearance
from deepfake_attention.explain.words import REGIONS, describe_map, region_labels, template_landmarks

from .conftest import make_checkpoint

LOWER_FACE = {"mouth", "nose", "right_cheek", "left_cheek", "right_jaw", "left_jaw", "right_face_edge", "left_face_edge"}
needs_dlib = pytest.mark.skipif(not landmarks_available(), reason="dlib and its 68-point model are not installed (the landmarks extra)")


def _hull(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1.0)
    return mask


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A real face crop (scikit-image's astronaut), its dlib landmarks and Haar box in crop pixels."""
    from skimage import data

    from deepfake_attention.data.faces import detect_faces
    from deepfake_attention.data.landmarks import LandmarkPredictor

    face = detect_faces(data.astronaut(), "haar", landmarks=LandmarkPredictor())[0]
    points, box = crop_geometry(face.crop_box, face.crop.shape[0], landmarks=face.landmarks, box=face.box)
    return face.crop, points, tuple(int(round(v)) for v in box)


def _fake(crop: np.ndarray, mask: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A self-blended fake with mask ``mask`` (feathered): the crop with a jittered copy of itself inside it."""
    rng = sample_rng(7, index)
    source, _ = change_appearance(crop, rng)
    soft = feather(mask, erode=1, sigma=2.0)
    return blend(source, crop, soft), soft


@needs_dlib
def test_mouth_only_fake_names_the_mouth(astronaut) -> None:
    crop, points, _ = astronaut
    fake, soft = _fake(crop, _hull(crop.shape[:2], points[48:60]), 0)
    difference = np.abs(fake.astype(np.float32) - crop).sum(axis=2)  # where the fake really differs
    for values in (soft, difference):
        words = describe_map(values, landmarks=points)
        assert words.source == "landmarks" and words.named[0] == "mouth" and words.shares["mouth"] > 0.9
        assert words.summary.startswith("Most evidence lies on the mouth")
        assert sum(words.shares.values()) == pytest.approx(1.0) and sum(words.detail.values()) == pytest.approx(1.0)


@needs_dlib
def test_lower_face_fake_names_lower_face_regions_and_its_boundary(astronaut) -> None:
    crop, points, box = astronaut
    mask, _ = other_mask(crop.shape[:2], box, points, "lower_face", sample_rng(0, 0))
    fake, soft = _fake(crop, mask, 1)
    words = describe_map(np.abs(fake.astype(np.float32) - crop).sum(axis=2), landmarks=points)
    assert set(words.named) <= LOWER_FACE and words.shares["eyes"] < 0.02 and words.shares["background"] < 0.02
    edge = describe_map(boundary(soft), landmarks=points)
    assert max(edge.shares, key=edge.shares.get) == "boundary" and "jaw" in edge.summary


@needs_dlib
def test_left_and_right_are_the_persons_and_swap_in_a_mirror(astronaut) -> None:
    from deepfake_attention.data.landmarks import LandmarkPredictor

    crop, points, box = astronaut
    mask, _ = other_mask(crop.shape[:2], box, points, "lower_face", sample_rng(0, 0))
    mask[:, : int(round(points[27, 0]))] = 0  # keep the image-right half: the person's left
    _, soft = _fake(crop, mask, 2)
    edge = boundary(soft)
    words = describe_map(edge, landmarks=points)
    assert "person's left" in words.summary and "person's right" not in words.summary, words.summary
    assert words.detail["left_jaw"] > 5 * words.detail["right_jaw"] and words.detail["left_cheek"] > 5 * words.detail["right_cheek"]
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    width = crop.shape[1]
    mirrored_points = LandmarkPredictor()(mirrored, (width - box[2], box[1], width - box[0], box[3]))
    flipped = describe_map(edge[:, ::-1], landmarks=mirrored_points)
    assert "person's right" in flipped.summary and "person's left" not in flipped.summary, flipped.summary
    assert flipped.detail["right_jaw"] == pytest.approx(words.detail["left_jaw"], abs=0.1)


@needs_dlib
def test_self_blend_masks_and_boundaries(astronaut) -> None:
    crop, points, box = astronaut
    seen = set()
    for index in range(6):
        sample = self_blend(crop, 3, index, landmarks=points, face_box=box)
        shape = sample.params["mask"]["shape"]
        seen.add(shape)
        mask_words, edge_words = describe_map(sample.mask, landmarks=points), describe_map(sample.boundary, landmarks=points)
        assert mask_words.shares["background"] < 0.1, (shape, mask_words.shares)
        if shape == "components":  # eyes + brows, nose and mouth
            assert mask_words.shares["eyes"] + mask_words.shares["nose"] + mask_words.shares["mouth"] > 0.7
        else:  # a hull over the whole face: its blending boundary is the face outline
            assert max(edge_words.shares, key=edge_words.shares.get) == "boundary", (shape, edge_words.shares)
    assert {"components", "hull"} <= seen


@needs_dlib
def test_template_agrees_with_landmarks(astronaut) -> None:
    crop, points, box = astronaut
    side = crop.shape[0]
    from_points, from_box = region_labels((side, side), points), region_labels((side, side), template_landmarks(box))
    background, mouth = REGIONS.index("background"), REGIONS.index("mouth")
    face_a, face_b = from_points != background, from_box != background
    assert (face_a & face_b).sum() / (face_a | face_b).sum() > 0.65  # measured 0.74
    mouth_a, mouth_b = from_points == mouth, from_box == mouth
    assert (mouth_a & mouth_b).sum() / (mouth_a | mouth_b).sum() > 0.3
    words = describe_map(_hull((side, side), points[48:60]), face_box=box)
    assert words.source == "template" and words.named[0] == "mouth"


def test_template_words_without_landmarks() -> None:
    side = 224
    points = template_landmarks((26, 26, 198, 198))  # the central 1/1.3 of a 224 crop, as describe_map assumes
    mouth = _hull((side, side), points[48:60])
    words = describe_map(mouth)
    assert words.source == "template" and words.named == ("mouth",) and words.shares["mouth"] > 0.95
    jaw = np.zeros((side, side), np.float32)
    for a, b in zip(points[8:16], points[9:17]):  # the jaw line on the image right: the person's left
        cv2.line(jaw, tuple(int(v) for v in a), tuple(int(v) for v in b), 1.0, thickness=6)
    words = describe_map(jaw)
    assert words.named[0] == "left_jaw" and "the person's left jaw boundary" in words.summary
    assert "person's right" in describe_map(jaw[:, ::-1]).summary
    real = describe_map(mouth, label="real")
    assert real.summary.startswith("Judged real; the little evidence for fake lies mostly on the mouth")
    assert describe_map(np.ones((56, 56))).summary.startswith("Evidence is spread over the whole crop")
    assert describe_map(np.zeros((56, 56))).summary == "The map is empty: no region carries evidence."
    low_res = describe_map(mouth[::8, ::8], frame=(side, side))  # a coarse map over the same crop
    assert low_res.named[0] == "mouth"
    assert set(describe_map(mouth).to_json()) == {"shares", "detail", "area", "named", "summary", "source"}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D map"):
        describe_map(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="finite"):
        describe_map(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="label must be"):
        describe_map(np.ones((8, 8)), label="maybe")
    with pytest.raises(ValueError, match=r"landmarks must be finite \[68, 2\]"):
        describe_map(np.ones((8, 8)), landmarks=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="x1 > x0"):
        template_landmarks((10, 10, 5, 20))


def test_describe_face_for_a_prediction(tmp_path: Path) -> None:
    detector = Detector.load(make_checkpoint(tmp_path / "ckpt", size=32), device="cpu")
    image = np.full((64, 64, 3), 128, np.uint8)
    prediction = detector.predict([image], cam=True)[0]
    whole = FaceCrop(box=(0, 0, 64, 64), score=None, crop=image, crop_box=(0, 0, 64, 64))
    words = describe_face(prediction, whole, threshold=1.0)
    assert words.source == "template" and words.summary.startswith(("Judged real", "Evidence is spread", "The map is empty"))
    points = template_landmarks((8, 8, 56, 56))
    detected = FaceCrop(box=(8, 8, 56, 56), score=5.0, crop=image, crop_box=(0, 0, 64, 64), landmarks=points.astype(np.float32))
    assert describe_face(prediction, detected, which="attention").source == "landmarks"
    with pytest.raises(ValueError, match="which must be"):
        describe_face(prediction, which="saliency")
