"""How face crops are cut, and coordinates between an input and its crops.

A crop is the square of side ``crop_scale`` x the longer side of a detected face box, centred on
it (:func:`square_crop_box`); the face then fills the crop's central ``1 / crop_scale``
(:func:`central_face_box`). A leaf: it imports nothing of the package, so faces, synthesis,
explanations and the pipeline share one definition.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels; ``x1``/``y1`` exclusive."""
CROP_BORDERS = ("shift", "constant", "replicate", "reflect")
"""How a crop that reaches past the image is made: ``shift`` moves (and if needed shrinks) the
square inside the image, so the face may sit off-centre (the first wave's crops); the others keep
the square centred on the face and fill the part outside the image with black (``constant``),
the nearest edge pixel (``replicate``) or the mirrored image (``reflect``, OpenCV's REFLECT_101)."""
_CV2_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


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


def centred_crop_box(box: Box, scale: float) -> Box:
    """The square of side ``round(scale * max(box width, box height))`` centred on ``box``, wherever it falls:
    it may reach past the image (negative, or beyond its width or height)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must have x1 > x0 and y1 > y0, got {box}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    side = max(1, int(math.floor(scale * max(x1 - x0, y1 - y0) + 0.5)))
    left = int(math.floor((x0 + x1) / 2 - side / 2 + 0.5))
    top = int(math.floor((y0 + y1) / 2 - side / 2 + 0.5))
    return left, top, left + side, top + side


def crop_box_for(box: Box, image_shape: tuple[int, ...], scale: float, border: str) -> Box:
    """Where the crop of ``box`` is cut: :func:`square_crop_box` for ``border="shift"``, else
    :func:`centred_crop_box` (which may lie partly outside the image)."""
    if border not in CROP_BORDERS:
        raise ValueError(f"crop border must be one of {CROP_BORDERS}, got {border!r}")
    return square_crop_box(box, image_shape, scale) if border == "shift" else centred_crop_box(box, scale)


def cut_crop(image: np.ndarray, crop_box: Box, border: str = "constant") -> np.ndarray:
    """The pixels of ``image`` [H, W, C] inside ``crop_box`` (a copy), the part outside the image filled
    as ``border`` says (``shift`` boxes lie inside the image, so nothing is filled). Never shifts or shrinks."""
    if border not in CROP_BORDERS:
        raise ValueError(f"crop border must be one of {CROP_BORDERS}, got {border!r}")
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop_box must have x1 > x0 and y1 > y0, got {crop_box}")
    height, width = image.shape[:2]
    pads = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    inside = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    if not any(pads):
        return np.ascontiguousarray(inside)
    if border == "shift":
        raise ValueError(f"crop_box {crop_box} reaches past the {width}x{height} image; 'shift' crops must lie inside it")
    if inside.size == 0 or border == "constant":
        out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
        if inside.size:
            out[pads[0] : pads[0] + inside.shape[0], pads[2] : pads[2] + inside.shape[1]] = inside
        return out
    if border == "reflect" and (pads[0] >= inside.shape[0] or pads[1] >= inside.shape[0] or pads[2] >= inside.shape[1] or pads[3] >= inside.shape[1]):
        # a mirror needs a wider image than the pad: mirror what there is, replicate the rest
        return _reflect_then_replicate(np.ascontiguousarray(inside), pads)
    return cv2.copyMakeBorder(np.ascontiguousarray(inside), *pads, _CV2_BORDERS[border])


def _reflect_then_replicate(inside: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    limit = (inside.shape[0] - 1, inside.shape[0] - 1, inside.shape[1] - 1, inside.shape[1] - 1)
    first = tuple(min(p, m) for p, m in zip(pads, limit))
    mirrored = cv2.copyMakeBorder(inside, *first, cv2.BORDER_REFLECT_101) if any(first) else inside
    rest = tuple(p - f for p, f in zip(pads, first))
    return cv2.copyMakeBorder(mirrored, *rest, cv2.BORDER_REPLICATE) if any(rest) else mirrored


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
