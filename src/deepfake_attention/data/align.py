"""Roll alignment of face crops with the detector's five landmarks (MTCNN).

An aligned crop is the face's square crop turned about the centre of its face box so that the
eyes are level: the same side, the same centre, only the in-plane roll removed. Whether the
default model should use it is a measured choice (``bench/ablation.py --arms aligned``); the
shipped pipeline cuts axis-aligned crops.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import cv2
import numpy as np

from ..crops import Box
from .faces import FaceCrop

_BORDERS = {"shift": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


def eye_roll_degrees(landmarks5: np.ndarray) -> float:
    """The angle of the line from the eye on the image's left (``landmarks5[0]``) to the other
    (``landmarks5[1]``), in degrees; positive when the second eye is lower (y grows downwards)."""
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"landmarks5 must be five finite (x, y) points, got shape {points.shape}")
    dx, dy = points[1] - points[0]
    return math.degrees(math.atan2(dy, dx))


def level_transform(centre: tuple[float, float], degrees: float, origin: tuple[float, float]) -> np.ndarray:
    """The 2x3 affine map from image pixels to the pixels of a crop whose top-left corner is ``origin``,
    turned by ``degrees`` about ``centre`` so that a line at ``degrees`` becomes level."""
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(degrees), 1.0)
    matrix[:, 2] -= np.asarray(origin, dtype=np.float64)
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` [N, 2] through the 2x3 affine ``matrix``, as float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def align_face(image: np.ndarray, face: FaceCrop, *, border: str = "constant",
               landmarks: Callable[[np.ndarray, Box], np.ndarray] | None = None) -> FaceCrop:
    """``face`` of ``image`` with its crop turned level on its five landmarks.

    The result lives in its own crop's pixels: ``crop_box`` is ``(0, 0, side, side)``, ``box`` is the
    face box in the crop (same size, same place as in the unturned crop), ``landmarks5`` are mapped
    and, when a ``landmarks`` predictor is given, the 68 landmarks are found again on the turned crop.
    Pixels from outside the image are filled as ``border`` says (``shift`` crops: the nearest edge).
    A face without five landmarks (a detector that gives none) raises ``ValueError``.
    """
    if face.landmarks5 is None or face.crop_box is None:
        raise ValueError("alignment needs the detector's five landmarks and the crop box (use the mtcnn detector)")
    if border not in _BORDERS:
        raise ValueError(f"crop border must be one of {tuple(_BORDERS)}, got {border!r}")
    x0, y0, x1, y1 = face.crop_box
    bx0, by0, bx1, by1 = face.box
    matrix = level_transform(((bx0 + bx1) / 2, (by0 + by1) / 2), eye_roll_degrees(face.landmarks5), (x0, y0))
    crop = cv2.warpAffine(np.ascontiguousarray(image), matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border], borderValue=0)
    box = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
    points = None if landmarks is None else np.asarray(landmarks(crop, box), dtype=np.float32)
    return replace(face, box=box, crop=crop, crop_box=(0, 0, x1 - x0, y1 - y0), landmarks=points, landmarks5=apply_transform(matrix, face.landmarks5))
