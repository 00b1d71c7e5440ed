"""Roll alignment: a face turned by a known angle comes back level, and the crop is the unturned one."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from deepfake_attention.data.align import align_face, apply_transform, eye_roll_degrees
from deepfake_attention.data.faces import FaceCrop


def _pattern(size: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(size // 10, size // 10, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)  # smooth, so that resampling errors stay small


LEVEL_POINTS = np.float32([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130]])


def _turned(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned by ``degrees`` about its centre (independently of align.py: OpenCV's rotation), and the landmarks with it."""
    matrix = cv2.getRotationMatrix2D((100.0, 100.0), degrees, 1.0)
    turned = cv2.warpAffine(image, matrix, (200, 200), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    points = (LEVEL_POINTS.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    return turned, points


def test_eye_roll_is_the_eye_line_angle() -> None:
    points = LEVEL_POINTS.copy()
    assert eye_roll_degrees(points) == 0.0
    points[1] = (80 + 40 * math.cos(math.radians(20)), 90 + 40 * math.sin(math.radians(20)))
    assert eye_roll_degrees(points) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="five finite"):
        eye_roll_degrees(np.zeros((4, 2)))


@pytest.mark.parametrize("degrees", [-25.0, 12.0])
def test_a_turned_face_comes_back_level(degrees: float) -> None:
    image = _pattern()
    turned, points = _turned(image, degrees)
    assert abs(eye_roll_degrees(points)) == pytest.approx(abs(degrees), abs=1e-3)
    face = FaceCrop(box=(60, 60, 140, 140), score=0.99, crop=turned[50:150, 50:150].copy(), crop_box=(50, 50, 150, 150), landmarks5=points)
    calls = []
    aligned = align_face(turned, face, border="constant", landmarks=lambda crop, box: calls.append((crop.shape, box)) or np.zeros((68, 2)))
    assert aligned.crop.shape == (100, 100, 3) and aligned.crop_box == (0, 0, 100, 100) and aligned.box == (10, 10, 90, 90)
    np.testing.assert_allclose(aligned.landmarks5, LEVEL_POINTS - 50, atol=1e-3)  # level, and where the unturned face had them
    assert calls == [((100, 100, 3), (10, 10, 90, 90))] and aligned.landmarks.shape == (68, 2)
    # the pixels are the unturned image's (two bilinear resamplings apart), away from the corners that came from outside
    centre = np.s_[20:80, 20:80]
    error = np.abs(aligned.crop[centre].astype(int) - image[50:150, 50:150][centre].astype(int)).mean()
    assert error < 3.0, error
    np.testing.assert_allclose(apply_transform(np.float64([[1, 0, -50], [0, 1, -50]]), LEVEL_POINTS), LEVEL_POINTS - 50)


def test_alignment_needs_five_landmarks() -> None:
    image = _pattern()
    face = FaceCrop(box=(60, 60, 140, 140), score=None, crop=image[50:150, 50:150], crop_box=(50, 50, 150, 150))
    with pytest.raises(ValueError, match="five landmarks"):
        align_face(image, face)
