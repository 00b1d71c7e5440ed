"""Faces in an image: boxes in original pixels and the square crops the model sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceCrop:
    """One face: its box ``(x0, y0, x1, y1)`` in original pixels, the detector's score and the crop."""

    box: tuple[int, int, int, int]
    score: float | None
    crop: np.ndarray


def whole_image(image: np.ndarray) -> FaceCrop:
    """The whole image as the one 'face' (``--no-face-detect``, or a model trained without detection)."""
    height, width = image.shape[:2]
    return FaceCrop(box=(0, 0, width, height), score=None, crop=image)
