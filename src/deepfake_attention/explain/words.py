"""Explanations in words: how a map's energy splits over facial regions, and one plain sentence.

Regions come from 68 landmarks (iBUG order, :mod:`~..data.landmarks`) when they are known, else
from a face-box template: the mean landmark layout relative to a Haar face box (measured with
dlib on 26 faces of the shared FaceForensics++ originals and the scikit-image / matplotlib sample
photos, then made left-right symmetric), placed in the face box. Every pixel of the crop gets one
region, in this order of precedence:

- ``eyes``: hull of each eye with its eyebrow, slightly dilated (``right_eye``, ``left_eye``);
- ``nose``: hull of the nose bridge and nostrils; ``mouth``: hull of the outer lips, dilated;
- ``boundary`` (the blending zone of a face swap): a band of +-7% of the face width around the
  face outline (jaw hull plus a forehead raised above the brows), split into ``forehead_edge``
  (above the nose bridge), ``right_face_edge`` / ``left_face_edge`` (down to the nose tip) and
  ``right_jaw`` / ``left_jaw`` (below it);
- ``skin``: the rest of the face, ``forehead`` (above the nose bridge), ``right_cheek``, ``left_cheek``;
- ``background``: everything outside.

Left and right are the PERSON's: the facial midline runs from the nose bridge (point 27) to the
chin (point 8), and a frontal face's image-right half is the person's left. Shares are the map's
energy (its non-negative values, summed) in each region over the total; they sum to 1. The
summary names the fewest regions holding half of the energy (at most three), and says the
evidence is spread when those regions hold no more than 1.5x their share of the area.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from ..crops import central_face_box
from .render import resize_map

WORK_SIDE = 112
"""Side of the square grid the regions are drawn on (maps are resized to it)."""
COARSE = {
    "eyes": ("right_eye", "left_eye"),
    "nose": ("nose",),
    "mouth": ("mouth",),
    "boundary": ("forehead_edge", "right_face_edge", "left_face_edge", "right_jaw", "left_jaw"),
    "skin": ("forehead", "right_cheek", "left_cheek"),
    "background": ("background",),
}
"""Coarse regions (the shares reported) and the fine regions (the words) they are made of."""
REGIONS = tuple(name for parts in COARSE.values() for name in parts)
_PHRASES = {
    "right_eye": "on the person's right eye", "left_eye": "on the person's left eye", "nose": "on the nose", "mouth": "on the mouth",
    "forehead_edge": "along the forehead edge (hairline)", "right_face_edge": "along the person's right face edge (temple and cheek)",
    "left_face_edge": "along the person's left face edge (temple and cheek)", "right_jaw": "along the person's right jaw boundary",
    "left_jaw": "along the person's left jaw boundary", "forehead": "on the forehead", "right_cheek": "on the person's right cheek",
    "left_cheek": "on the person's left cheek", "background": "in the background outside the face",
}
_PAIRS = {("right_eye", "left_eye"): "on both eyes", ("right_cheek", "left_cheek"): "on both cheeks",
          ("right_jaw", "left_jaw"): "along the jaw boundary on both sides", ("right_face_edge", "left_face_edge"): "along both face edges"}
TEMPLATE = np.array([
    (0.077, 0.420), (0.079, 0.528), (0.089, 0.637), (0.109, 0.746), (0.148, 0.849), (0.214, 0.939), (0.299, 1.015), (0.394, 1.080),
    (0.500, 1.099), (0.606, 1.080), (0.701, 1.015), (0.786, 0.939), (0.852, 0.849), (0.891, 0.746), (0.911, 0.637), (0.921, 0.528),
    (0.923, 0.420), (0.174, 0.339), (0.220, 0.292), (0.286, 0.271), (0.357, 0.277), (0.425, 0.306), (0.575, 0.306), (0.643, 0.277),
    (0.714, 0.271), (0.780, 0.292), (0.826, 0.339), (0.500, 0.396), (0.500, 0.464), (0.500, 0.533), (0.500, 0.602), (0.426, 0.655),
    (0.462, 0.671), (0.500, 0.682), (0.538, 0.671), (0.574, 0.655), (0.255, 0.408), (0.297, 0.379), (0.352, 0.378), (0.398, 0.413),
    (0.349, 0.428), (0.295, 0.429), (0.602, 0.413), (0.648, 0.378), (0.703, 0.379), (0.745, 0.408), (0.705, 0.429), (0.651, 0.428),
    (0.355, 0.808), (0.408, 0.778), (0.461, 0.762), (0.500, 0.772), (0.539, 0.762), (0.592, 0.778), (0.645, 0.808), (0.594, 0.865),
    (0.542, 0.888), (0.500, 0.894), (0.458, 0.888), (0.406, 0.865), (0.382, 0.810), (0.462, 0.795), (0.500, 0.798), (0.538, 0.795),
    (0.618, 0.810), (0.539, 0.827), (0.500, 0.832), (0.461, 0.827),
], dtype=np.float64)
"""Mean 68-point layout as fractions of a Haar face box (x0, y0, x1, y1): x = (px - x0) / width."""


def template_landmarks(face_box: tuple[float, float, float, float]) -> np.ndarray:
    """:data:`TEMPLATE` placed in ``face_box`` (x0, y0, x1, y1): [68, 2] float64 landmarks in its pixels."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face_box must have x1 > x0 and y1 > y0, got {face_box}")
    return TEMPLATE * [x1 - x0, y1 - y0] + [x0, y0]


def _hull(shape: tuple[int, int], points: np.ndarray, dilate: int = 0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32).reshape(-1, 1, 2)), 1)
    if dilate > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)))
    return mask.astype(bool)


def region_labels(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Index into :data:`REGIONS` of every pixel of an image of ``shape`` (H, W), from [68, 2] landmarks in its pixels."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"landmarks must be finite [68, 2] (x, y) pixels, got shape {points.shape}")
    top, chin = points[27], points[8]
    axis = chin - top
    length = float(np.hypot(*axis))
    face_width = float(np.hypot(*(points[16] - points[0])))
    if length < 1.0 or face_width < 1.0:
        raise ValueError("the landmarks are degenerate (face narrower or shorter than one pixel)")
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rel_x, rel_y = xs - top[0], ys - top[1]
    down = (rel_x * axis[0] + rel_y * axis[1]) / length**2  # 0 at the nose bridge, 1 at the chin
    person_left = (axis[0] * rel_y - axis[1] * rel_x) < 0  # image-right of the midline for an upright face
    nose_tip = float(np.dot(points[33] - top, axis)) / length**2
    raised = points[17:27] - axis * 0.25  # brows lifted by a quarter of the face height: the forehead
    outline = _hull(shape, np.concatenate([points[:17], raised]))
    band_px = max(1, int(round(0.07 * face_width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    as_u8 = outline.astype(np.uint8)
    band = cv2.dilate(as_u8, kernel).astype(bool) & ~cv2.erode(as_u8, kernel).astype(bool)
    small = max(1, int(round(0.03 * face_width)))
    index = {name: k for k, name in enumerate(REGIONS)}
    labels = np.full(shape, index["background"], dtype=np.int8)

    def side(left: str, right: str) -> np.ndarray:
        return np.where(person_left, index[left], index[right])

    skin = np.where(down < 0, index["forehead"], side("left_cheek", "right_cheek"))
    labels[outline] = skin[outline]
    edge = np.where(down < 0, index["forehead_edge"], np.where(down < nose_tip, side("left_face_edge", "right_face_edge"), side("left_jaw", "right_jaw")))
    labels[band] = edge[band]
    mouth = _hull(shape, points[48:60], small)
    nose = _hull(shape, points[27:36], max(1, small // 2))
    eye_a, eye_b = _hull(shape, points[list(range(17, 22)) + list(range(36, 42))], small), _hull(shape, points[list(range(22, 27)) + list(range(42, 48))], small)
    labels[mouth] = index["mouth"]
    labels[nose] = index["nose"]
    for eye in (eye_a, eye_b):
        left = bool(person_left[eye].mean() > 0.5) if eye.any() else False
        labels[eye] = index["left_eye" if left else "right_eye"]
    return labels


@dataclass(frozen=True)
class WordsExplanation:
    """Where a map's energy lies, in numbers and in one sentence."""

    shares: dict[str, float]
    """Coarse regions (:data:`COARSE`): eyes, nose, mouth, boundary, skin, background; sum to 1."""
    detail: dict[str, float]
    """Fine regions (:data:`REGIONS`), person's left and right; sum to 1."""
    area: dict[str, float]
    """Share of the crop's area of each fine region."""
    named: tuple[str, ...]
    """The fine regions the summary names (empty when the evidence is spread or the map empty)."""
    summary: str
    source: str
    """``"landmarks"`` or ``"template"`` (face-box template)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["named"] = list(self.named)
        return data


def describe_map(
    values: np.ndarray, *, landmarks: np.ndarray | None = None, face_box: tuple[float, float, float, float] | None = None,
    frame: tuple[int, int] | None = None, crop_scale: float = 1.3, label: str | None = None,
) -> WordsExplanation:
    """Shares of a map's energy per facial region and a one-line summary (module docstring).

    Args:
        values: the map [h, w] over the face crop (non-negative; Grad-CAM++ or the attention gate).
        landmarks: [68, 2] landmarks in the pixels of ``frame``; preferred when given.
        face_box: the face box (x0, y0, x1, y1) in ``frame``'s pixels for the template; default
            the central ``1 / crop_scale`` of the frame (how crops are cut around a detected face).
        frame: (H, W) of the crop the landmarks and box refer to (default: the map's shape).
        label: ``"real"`` or ``"fake"`` (optional): a real verdict says the evidence is weak.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"values must be a 2-D map [h, w], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values must be finite (the map holds NaN or inf)")
    if label not in (None, "real", "fake"):
        raise ValueError(f"label must be 'real', 'fake' or None, got {label!r}")
    height, width = frame if frame is not None else values.shape
    if landmarks is not None:
        points, source = np.asarray(landmarks, dtype=np.float64), "landmarks"
    else:
        box = face_box if face_box is not None else central_face_box((height, width), crop_scale)
        points, source = template_landmarks(box), "template"
    scaled = points * [WORK_SIDE / width, WORK_SIDE / height]
    labels = region_labels((WORK_SIDE, WORK_SIDE), scaled)
    energy = np.clip(resize_map(values, (WORK_SIDE, WORK_SIDE)), 0.0, None).astype(np.float64)
    counts = np.bincount(labels.ravel(), minlength=len(REGIONS)) / labels.size
    sums = np.bincount(labels.ravel(), weights=energy.ravel(), minlength=len(REGIONS))
    total = float(sums.sum())
    detail = {name: float(sums[k] / total) if total > 0 else 0.0 for k, name in enumerate(REGIONS)}
    area = {name: float(counts[k]) for k, name in enumerate(REGIONS)}
    shares = {coarse: float(sum(detail[p] for p in parts)) for coarse, parts in COARSE.items()}
    named, summary = _summary(detail, area, total, label)
    return WordsExplanation(shares=shares, detail=detail, area=area, named=named, summary=summary, source=source)


def _summary(detail: dict[str, float], area: dict[str, float], total: float, label: str | None) -> tuple[tuple[str, ...], str]:
    if total <= 0:
        return (), "The map is empty: no region carries evidence."
    ranked = sorted(REGIONS, key=lambda name: (-detail[name], REGIONS.index(name)))
    named: list[str] = []
    for name in ranked:
        if named and (sum(detail[n] for n in named) >= 0.5 or len(named) == 3 or detail[name] < 0.1):
            break
        named.append(name)
    held = sum(detail[n] for n in named)
    if held <= 1.5 * sum(area[n] for n in named):
        top = ranked[0]
        return (), f"Evidence is spread over the whole crop; no region stands out (largest: {_PHRASES[top].split(' ', 1)[1]}, {detail[top]:.0%})."
    phrases, used = [], set()
    for name in named:
        if name in used:
            continue
        pair = next((p for p in _PAIRS if name in p and all(n in named for n in p)), None)
        phrases.append(_PAIRS[pair] if pair else _PHRASES[name])
        used.update(pair or (name,))
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    lead = "Judged real; the little evidence for fake lies mostly" if label == "real" else "Most evidence lies"
    return tuple(named), f"{lead} {joined} ({held:.0%} of the map)."
