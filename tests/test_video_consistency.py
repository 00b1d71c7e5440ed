"""analysis.video_consistency: which faces are paired, over how many frames, and the crop-shift compensation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from deepfake_attention.analysis.video_consistency import ConsistencyWindow, crop_offset, near
from deepfake_attention.data.faces import FaceCrop

SIDE = 32


def _face(box: tuple[int, int, int, int], crop_box: tuple[int, int, int, int] | None = None) -> FaceCrop:
    return FaceCrop(box=box, score=0.99, crop=np.zeros((8, 8, 3), np.uint8), crop_box=crop_box)


def _blob(cy: float, cx: float) -> np.ndarray:
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    return np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / 30.0)


def test_pairs_nearby_faces_within_the_window_only() -> None:
    window = ConsistencyWindow(2)
    here, far = (100, 100, 160, 160), (400, 100, 460, 160)
    noise = np.random.default_rng(0).random((SIDE, SIDE))
    window.add(0, [_face(here), _face(far)], [_blob(12, 12), noise])
    window.add(1, [_face(here)], [_blob(14, 12)])
    window.add(2, [], [])  # a frame without a face does not take a place in the window
    window.add(3, [_face(here)], [_blob(13, 12)])
    window.add(4, [_face(here)], [_blob(12, 12)])  # sample 0 has left the two-frame window
    want = pearsonr(_blob(12, 12).ravel(), _blob(14, 12).ravel())[0]
    assert window.between((0, 0), (1, 0)) == pytest.approx(want)
    assert window.between((0, 1), (1, 0)) is None  # too far apart to be one track
    assert window.between((0, 0), (3, 0)) is not None  # the faceless frame 2 kept 0 in the window
    assert window.between((0, 0), (4, 0)) is None and window.between((1, 0), (4, 0)) is not None


def test_a_shifted_crop_is_compensated() -> None:
    # the same face, but the second crop was shifted right by a quarter of its side to stay inside the frame
    a = _face((100, 100, 164, 164), crop_box=(68, 68, 196, 196))
    b = _face((100, 100, 164, 164), crop_box=(100, 68, 228, 196))
    assert crop_offset(a, b, SIDE) == (0, -8)  # the face sits 8 map pixels further left in b's crop
    window = ConsistencyWindow(1)
    window.add(0, [a], [_blob(16, 16)])
    window.add(1, [b], [_blob(16, 8)])
    assert window.between((0, 0), (1, 0)) == pytest.approx(1.0)
    assert near(a.box, b.box) and not near((0, 0, 10, 10), (40, 0, 50, 10))
    with pytest.raises(ValueError, match="at least one frame"):
        ConsistencyWindow(0)
