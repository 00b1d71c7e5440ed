"""Crop geometry: centred squares that may reach past the image, and how the outside is filled."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_attention.crops import CROP_BORDERS, centred_crop_box, crop_box_for, cut_crop, square_crop_box

IMAGE = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)


def test_centred_box_keeps_the_face_in_the_middle_even_at_the_border() -> None:
    box = (0, 10, 30, 40)  # a face touching the left edge
    assert centred_crop_box(box, 1.3) == (-4, 6, 35, 45)  # side round(1.3 * 30) = 39
    shifted = square_crop_box(box, IMAGE.shape, 1.3)
    assert shifted == (0, 6, 39, 45)  # the first wave's crop: moved right, face off-centre
    assert crop_box_for(box, IMAGE.shape, 1.3, "shift") == shifted
    assert crop_box_for(box, IMAGE.shape, 1.3, "constant") == (-4, 6, 35, 45)


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
def test_padded_crop_is_the_image_where_it_exists(border: str) -> None:
    crop = cut_crop(IMAGE, (-4, -3, 20, 21), border)
    assert crop.shape == (24, 24, 3) and crop.dtype == np.uint8
    assert np.array_equal(crop[3:, 4:], IMAGE[0:21, 0:20])
    outside = crop[:3, :]
    if border == "constant":
        assert not outside.any()
    elif border == "replicate":
        assert np.array_equal(crop[0, 4:], IMAGE[0, 0:20]) and np.array_equal(crop[5, 0], IMAGE[2, 0])
    else:  # REFLECT_101: the row above row 0 is row 1
        assert np.array_equal(crop[2, 4:], IMAGE[1, 0:20]) and np.array_equal(crop[3, 3], IMAGE[0, 1])


def test_crop_far_outside_is_filled_not_shrunk() -> None:
    for border in ("constant", "replicate", "reflect"):
        crop = cut_crop(IMAGE, (-100, -100, 200, 200), border)
        assert crop.shape == (300, 300, 3)
        assert np.array_equal(crop[100:160, 100:180], IMAGE)
    assert not cut_crop(IMAGE, (100, 100, 110, 110), "constant").any()  # wholly outside: all fill


def test_inside_crop_is_a_plain_copy_and_bad_boxes_are_refused() -> None:
    crop = cut_crop(IMAGE, (5, 6, 25, 26), "shift")
    assert np.array_equal(crop, IMAGE[6:26, 5:25]) and crop.flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError, match="'shift' crops must lie inside"):
        cut_crop(IMAGE, (-1, 0, 10, 10), "shift")
    with pytest.raises(ValueError, match="crop border must be one of"):
        cut_crop(IMAGE, (0, 0, 10, 10), "wrap")
    with pytest.raises(ValueError, match="x1 > x0"):
        cut_crop(IMAGE, (5, 0, 5, 10))
    with pytest.raises(ValueError, match="scale must be > 0"):
        centred_crop_box((0, 0, 4, 4), 0)
    assert CROP_BORDERS[0] == "shift"
