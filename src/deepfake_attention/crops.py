"""How face crops are cut, and coordinates between an input and its crops.

A crop is the square of side ``crop_scale`` x the longer side of a detected face box, centred on
it (:func:`square_crop_box`); the face then fills the crop's central ``1 / crop_scale``
(:func:`central_face_box`). A leaf: it imports nothing of the package, so faces, synthesis,
explanations and the pipeline share one definition.
"""

from __future__ import annotations

import math

import numpy as np

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels; ``x1``/``y1`` exclusive."""


def square_crop_box(box: Box, image_shape: tuple[int, ...], scale: float) -> Box:
    """A square of side ``round(scale * max(box width, box height))`` centred on ``box``, inside the image.

    Clamping keeps the crop square: a crop that sticks out of the image is shifted inside it
    (so the face is then off-centre); a crop larger than the image's shorter side is first shrunk
    to that side (then it spans the whole shorter dimension, centred on the face along the other).
    Returns ``(x0, y0, x1, y1)`` integers with ``0 <= x0 < x1 <= W`` and ``0 <= y0 < y1 <= H``.
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must have x1 > x0 and y1 > y0, got {box}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    height, width = int(image_shape[0]), int(image_shape[1])
    side = int(math.floor(scale * max(x1 - x0, y1 - y0) + 0.5))
    side = max(1, min(side, height, width))
    left = int(math.floor((x0 + x1) / 2 - side / 2 + 0.5))
    top = int(math.floor((y0 + y1) / 2 - side / 2 + 0.5))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def central_face_box(shape: tuple[int, ...], crop_scale: float = 1.3) -> tuple[int, int, int, int]:
    """The face box of a square crop made by ``square_crop_box(..., crop_scale)``: its central 1/crop_scale."""
    height, width = shape[:2]
    half_w, half_h = width / (2 * crop_scale), height / (2 * crop_scale)
    return (int(round(width / 2 - half_w)), int(round(height / 2 - half_h)), int(round(width / 2 + half_w)), int(round(height / 2 + half_h)))


def crop_geometry(crop_box: tuple[int, int, int, int], size: int, *, landmarks: np.ndarray | None = None,
                  box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray | None, tuple[float, float, float, float] | None]:
    """Landmarks and face box from input pixels to the pixels of the crop resized to ``size`` x ``size``.

    ``crop_box`` (x0, y0, x1, y1) is where the square crop was cut (:class:`~..data.faces.FaceCrop`).
    """
    x0, y0, x1, y1 = (float(v) for v in crop_box)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    points = None if landmarks is None else (np.asarray(landmarks, dtype=np.float64) - [x0, y0]) * [sx, sy]
    face = None if box is None else ((box[0] - x0) * sx, (box[1] - y0) * sy, (box[2] - x0) * sx, (box[3] - y0) * sy)
    return points, face
