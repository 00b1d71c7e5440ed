"""Honest overlays: no evidence leaves the face untouched; strength follows P(fake)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_attention.explain.render import FaceView, colorize, overlay, render_panel, resize_map
from deepfake_attention.files import safe_stem

from .conftest import random_rgb


def test_zero_map_or_zero_strength_leaves_the_image_untouched() -> None:
    image = random_rgb(32, 32)
    assert np.array_equal(overlay(image, np.zeros((8, 8))), image)
    assert np.array_equal(overlay(image, np.ones((8, 8)), strength=0.0), image)


def test_opacity_grows_with_strength_and_value() -> None:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    weak = overlay(image, np.ones((16, 16)), strength=0.2).astype(int).sum()
    strong = overlay(image, np.ones((16, 16)), strength=1.0).astype(int).sum()
    assert strong > 4 * weak > 0
    with pytest.raises(ValueError, match="strength"):
        overlay(image, np.ones((4, 4)), strength=2.0)


def test_colormap_is_monotone_in_lightness_and_clipped() -> None:
    colors = colorize(np.linspace(-1, 2, 50)).astype(float)
    lightness = colors @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lightness) >= -1.0)
    assert np.array_equal(colorize(np.array([-5.0])), colorize(np.array([0.0])))


def test_resize_map_is_bilinear_to_the_requested_size() -> None:
    values = np.arange(4, dtype=np.float32).reshape(2, 2)
    resized = resize_map(values, (8, 6))
    assert resized.shape == (6, 8) and resized.min() >= 0 and resized.max() <= 3


def test_panel_has_one_row_per_face_and_safe_names() -> None:
    face = FaceView(random_rgb(30, 30), np.random.rand(7, 7), np.random.rand(30, 30), 0.9, "fake")
    one = render_panel([face], 0.5, title="x")
    two = render_panel([face, face], 0.5, title="x")
    assert two.height == 2 * one.height and one.width == 3 * 224
    no_cam = render_panel([FaceView(face.crop, face.attention, None, 0.1, "real")], 0.5)
    assert no_cam.width == 2 * 224
    assert safe_stem("/a/b/we ird$name.v1.jpg") == "we_ird_name.v1"
    assert safe_stem("...") == "input"
