"""Attention consistency of a video's face tracks (the seed's temporal metric), computed on the fly.

Per pair of nearby faces in frames at most ``max_gap`` samples apart, the Pearson correlation of
their attention maps (``metrics.attention.frame_consistency``), compared at up to
:data:`CONSISTENCY_SIZE` x :data:`CONSISTENCY_SIZE`. The crops are squares centred on the detected
face box, so the maps are already face-aligned; what remains is (a) the face's offset inside its
crop when a crop was shifted to stay inside the frame, which is compensated (the shift of the face
centre in crop coordinates, rounded to map pixels), and (b) the detector's box jitter, which cannot
be measured without landmarks and stays in. Only the small maps of the last ``window`` sampled
frames that had faces are kept (``analyze``: ``max_gap + 1``, so every pair the track linker can
join is there): memory stays bounded however long the video.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..data.faces import FaceCrop
from ..explain.render import resize_map
from ..metrics.attention import frame_consistency

CONSISTENCY_SIZE = 56
"""Largest side the attention maps are compared at."""

FaceKey = tuple[int, int]
"""(sample index, face index within the sample)."""


class ConsistencyWindow:
    """Consistency of each face with the nearby faces of the last ``window`` sampled frames that had faces."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"the window must hold at least one frame, got {window}")
        self._frames: deque[tuple[int, list[tuple[FaceCrop, np.ndarray]]]] = deque(maxlen=window)
        self._pairs: dict[tuple[FaceKey, FaceKey], float] = {}

    def add(self, sample: int, faces: list[FaceCrop], attention_maps: list[np.ndarray]) -> None:
        """Take sample ``sample``'s faces and their attention maps; pair them with the window's nearby faces."""
        current = [(face, _small_map(values)) for face, values in zip(faces, attention_maps)]
        for earlier, previous in self._frames:
            for i, (face_a, map_a) in enumerate(previous):
                for j, (face_b, map_b) in enumerate(current):
                    if near(face_a.box, face_b.box) and map_a.shape == map_b.shape:
                        offset = crop_offset(face_a, face_b, map_a.shape[0])
                        self._pairs[((earlier, i), (sample, j))] = float(frame_consistency(map_a, map_b, offset=offset))
        if current:
            self._frames.append((sample, current))

    def between(self, a: FaceKey, b: FaceKey) -> float | None:
        """The consistency of face ``a`` with the later face ``b``; None when they were not paired or it is undefined."""
        value = self._pairs.get((a, b), math.nan)
        return None if math.isnan(value) else value


def _small_map(values: np.ndarray) -> np.ndarray:
    side = min(CONSISTENCY_SIZE, values.shape[0])
    return resize_map(values, (side, side))


def near(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Boxes close enough to belong to one track (centres within 1.5 box sides)."""
    side = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    return abs((a[0] + a[2]) - (b[0] + b[2])) / 2 <= 1.5 * side and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 <= 1.5 * side


def crop_offset(a: FaceCrop, b: FaceCrop, side: int) -> tuple[int, int]:
    """Motion (dy, dx) in map pixels of the face centre inside its crop from face ``a`` to face ``b``."""
    def position(face: FaceCrop) -> tuple[float, float]:
        if face.crop_box is None:
            return 0.0, 0.0
        x0, y0, x1, y1 = face.crop_box
        width, height = max(1, x1 - x0), max(1, y1 - y0)
        return ((face.box[1] + face.box[3]) / 2 - (y0 + y1) / 2) / height, ((face.box[0] + face.box[2]) / 2 - (x0 + x1) / 2) / width

    (ya, xa), (yb, xb) = position(a), position(b)
    clamp = side - 1
    return max(-clamp, min(clamp, round((yb - ya) * side))), max(-clamp, min(clamp, round((xb - xa) * side)))
