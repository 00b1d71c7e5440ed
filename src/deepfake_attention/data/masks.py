"""Blend masks for synthesized forgeries: face-shaped regions, elastic deformation, feathering.

Every function is pure: its randomness comes from the ``rng`` argument (a
``numpy.random.Generator``) and it returns the mask with a JSON-serialisable dict of its choices.
Masks are float32 [H, W]; shapes are binary (0/1) until :func:`feather` softens them.
Landmarks follow the iBUG 68-point order (see :mod:`.landmarks`); boxes are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

SBI_SHAPES = ("hull", "extended", "inner", "components")
"""Landmark masks of Self-Blended Images: full hull, hull with raised brows (forehead), the
inner face without the jaw, and the union of eyes+brows, nose and mouth."""
BOX_SHAPES = ("ellipse", "polygon")
"""Landmark-free masks over the face box."""
OTHER_SHAPES = ("lower_face", "eyes", "rectangle")
"""Masks of the second ('other') family."""
_EYES = (list(range(17, 22)) + list(range(36, 42)), list(range(22, 27)) + list(range(42, 48)))


def _fill_hull(shape: tuple[int, int], points: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros(shape, np.float32) if out is None else out
    hull = cv2.convexHull(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_8)
    return mask


def _box_geometry(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, float(x1 - x0), float(y1 - y0)


def landmark_mask(shape: tuple[int, int], landmarks: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """One of :data:`SBI_SHAPES` from landmarks [68, 2] (pixels of an image of ``shape`` = (H, W))."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"landmarks must be [68, 2], got {points.shape}")
    params: dict[str, Any] = {"shape": kind}
    if kind == "hull":
        return _fill_hull(shape, points), params
    if kind == "extended":
        lift = float(rng.uniform(0.1, 0.35))
        face_height = float(points[8, 1] - points[27, 1])
        raised = points.copy()
        raised[17:27, 1] -= lift * face_height
        params["lift"] = lift
        return _fill_hull(shape, np.concatenate([points[:17], raised[17:27]])), params
    if kind == "inner":
        return _fill_hull(shape, points[17:]), params
    if kind == "components":
        mask = np.zeros(shape, np.float32)
        for group in (*_EYES, list(range(27, 36)), list(range(48, 68))):
            _fill_hull(shape, points[group], mask)
        radius = int(rng.integers(1, max(2, int(0.04 * (points[16, 0] - points[0, 0])) + 1)))
        params["dilate"] = radius
        return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))), params
    raise ValueError(f"unknown landmark mask {kind!r}; use one of {SBI_SHAPES}")


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int], kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """One of :data:`BOX_SHAPES` over the face ``box`` (no landmarks needed)."""
    cx, cy, w, h = _box_geometry(box)
    cx, cy = cx + w * float(rng.uniform(-0.05, 0.05)), cy + h * float(rng.uniform(-0.03, 0.08))
    params: dict[str, Any] = {"shape": kind, "center": [cx, cy]}
    mask = np.zeros(shape, np.float32)
    if kind == "ellipse":
        axes = (w * float(rng.uniform(0.32, 0.45)), h * float(rng.uniform(0.42, 0.56)))
        angle = float(rng.uniform(-15, 15))
        cv2.ellipse(mask, ((cx, cy), (2 * axes[0], 2 * axes[1]), angle), 1.0, -1, lineType=cv2.LINE_8)
        params.update(axes=list(axes), angle=angle)
        return mask, params
    if kind == "polygon":
        count = int(rng.integers(5, 11))
        angles = (np.arange(count) + rng.uniform(0, 1, count)) * (2 * np.pi / count)  # one per sector: never degenerate
        radii = rng.uniform(0.32, 0.52, count)
        points = np.stack([cx + radii * w * np.cos(angles), cy + radii * h * np.sin(angles)], axis=1)
        params["points"] = points.round(2).tolist()
        return _fill_hull(shape, points, mask), params
    raise ValueError(f"unknown box mask {kind!r}; use one of {BOX_SHAPES}")


def other_mask(
    shape: tuple[int, int], box: tuple[int, int, int, int], landmarks: np.ndarray | None, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """One of :data:`OTHER_SHAPES`: lower face, eyes region or a rectangle (landmarks refine the first two)."""
    cx, cy, w, h = _box_geometry(box)
    params: dict[str, Any] = {"shape": kind, "landmarks": landmarks is not None}
    mask = np.zeros(shape, np.float32)
    if kind == "lower_face":
        if landmarks is not None:
            points = np.asarray(landmarks, dtype=np.float64)
            return _fill_hull(shape, np.concatenate([points[2:15], points[29:36]])), params
        axes = (w * float(rng.uniform(0.3, 0.42)), h * float(rng.uniform(0.2, 0.3)))
        center = (cx, box[1] + h * float(rng.uniform(0.68, 0.76)))
        cv2.ellipse(mask, (center, (2 * axes[0], 2 * axes[1]), 0.0), 1.0, -1, lineType=cv2.LINE_8)
        params.update(center=list(center), axes=list(axes))
        return mask, params
    if kind == "eyes":
        if landmarks is not None:
            points = np.asarray(landmarks, dtype=np.float64)
            mask = _fill_hull(shape, points[list(range(17, 27)) + list(range(36, 48))])
            radius = int(rng.integers(2, max(3, int(0.05 * w) + 1)))
            params["dilate"] = radius
            return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))), params
        top, bottom = box[1] + h * float(rng.uniform(0.15, 0.25)), box[1] + h * float(rng.uniform(0.45, 0.55))
        left, right = box[0] + w * float(rng.uniform(0.05, 0.15)), box[2] - w * float(rng.uniform(0.05, 0.15))
        params["rect"] = [left, top, right, bottom]
        return _fill_hull(shape, np.array([[left, top], [right, top], [right, bottom], [left, bottom]]), mask), params
    if kind == "rectangle":
        rw, rh = w * float(rng.uniform(0.3, 0.8)), h * float(rng.uniform(0.3, 0.8))
        left = box[0] + float(rng.uniform(0, w - rw))
        top = box[1] + float(rng.uniform(0, h - rh))
        params["rect"] = [left, top, left + rw, top + rh]
        return _fill_hull(shape, np.array([[left, top], [left + rw, top], [left + rw, top + rh], [left, top + rh]]), mask), params
    raise ValueError(f"unknown mask {kind!r}; use one of {OTHER_SHAPES}")


def elastic_deform(mask: np.ndarray, rng: np.random.Generator, *, alpha: float, sigma: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Warp ``mask`` by a smooth random displacement field (Simard et al. 2003) and re-binarise it.

    The field is uniform noise in [-1, 1] per pixel and axis, Gaussian-smoothed with ``sigma``
    pixels and scaled by ``alpha`` pixels (as albumentations' ElasticTransform, used by SBI).
    """
    if alpha < 0 or sigma <= 0:
        raise ValueError(f"alpha must be >= 0 and sigma > 0, got {alpha}, {sigma}")
    height, width = mask.shape
    noise = rng.uniform(-1.0, 1.0, size=(2, height, width)).astype(np.float32)
    dx = cv2.GaussianBlur(noise[0], (0, 0), sigma, borderType=cv2.BORDER_REFLECT) * alpha
    dy = cv2.GaussianBlur(noise[1], (0, 0), sigma, borderType=cv2.BORDER_REFLECT) * alpha
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(mask.astype(np.float32), grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return (warped > 0.5).astype(np.float32), {"alpha": float(alpha), "sigma": float(sigma)}


def feather(mask: np.ndarray, *, erode: int, sigma: float) -> np.ndarray:
    """Shrink a binary mask by ``erode`` pixels, then blur it with a Gaussian of ``sigma`` pixels.

    Returns float32 in [0, 1]; values below 1e-3 are set to 0 so the support stays compact
    (a weight that small changes no 8-bit pixel).
    """
    if erode < 0 or sigma < 0:
        raise ValueError(f"erode and sigma must be >= 0, got {erode}, {sigma}")
    soft = mask.astype(np.float32)
    if erode > 0:
        soft = cv2.erode(soft, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1)))
    if sigma > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    soft = np.clip(soft, 0.0, 1.0)
    soft[soft < 1e-3] = 0.0
    return soft


def boundary(mask: np.ndarray) -> np.ndarray:
    """The blending boundary of Face X-ray, ``B = 4 M (1 - M)`` (float32, 1 where M = 0.5)."""
    mask = mask.astype(np.float32, copy=False)
    return (np.float32(4.0) * mask * (np.float32(1.0) - mask)).astype(np.float32)
