"""Face detectors: boxes (and for MTCNN five landmarks) in an image's original pixels.

Detection runs on a downscaled copy (longest side <= 640 px by default; for Haar grayscale and
histogram-equalised) and the boxes are mapped back to the original pixels. Overlapping and
nested boxes are merged by non-maximum suppression; faces smaller than a minimum size are
ignored. Detectors are cheap objects that load their model lazily, once per process (and pickle
without it), so they can be shared with DataLoader workers. :func:`get_face_detector` gives the
shared instance for a name and its options (a checkpoint's ``preprocess.detector`` and
``preprocess.detector_options``).

- ``"mtcnn"`` (the default of new checkpoints): :mod:`.mtcnn` (Zhang et al., 2016) with the
  shipped weights; ``det_score`` is O-Net's face probability; it also gives five landmarks and
  finds faces that fill or touch the frame (tight crops).
- ``"haar"`` (always available): OpenCV's ``haarcascade_frontalface_default.xml``.
  ``det_score`` is the cascade's final-stage sum for the best window of the group
  (``detectMultiScale3(outputRejectLevels=True)`` level weight): larger = more face-like, not a
  probability (3.8-10.8 on the faces of 200 frames of the shared test videos; the background
  hits that ``min_neighbors`` 3-5 let through there scored 1.6-4.7, so no score threshold is used).
- ``"dlib"`` (with the ``landmarks`` extra): dlib's HOG detector; ``det_score`` is its SVM
  margin. It finds no face below about 80 px in the downscaled copy unless ``upsample`` > 0.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import cv2
import numpy as np

from ..crops import Box

FACE_DETECTORS = ("mtcnn", "haar", "dlib")
"""Names accepted by :func:`get_face_detector`; ``"none"`` in a checkpoint means the whole image."""
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
DET_SCORE_FLOORS: dict[str, float | None] = {"mtcnn": 0.9, "haar": 3.0, "dlib": 0.0, "none": None}
"""Per detector, the mean detection score a video's face track needs to vote (scores are on each
detector's own scale: MTCNN's O-Net probability; Haar's cascade sums, 3.8-10.8 on real faces and 1.6-4.7 on background hits of
the shared test videos; dlib's SVM margin; none for the whole image)."""


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou: float = 0.3, containment: float = 0.7) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when its IoU with a kept box exceeds ``iou`` or when more than
    ``containment`` of its own area lies inside a kept box (a window nested in a face).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = sorted(range(len(boxes)), key=lambda k: (-float(scores[k]), k))
    kept: list[int] = []
    for k in order:
        if kept:
            other = boxes[kept]
            w = np.clip(np.minimum(other[:, 2], boxes[k, 2]) - np.maximum(other[:, 0], boxes[k, 0]), 0, None)
            h = np.clip(np.minimum(other[:, 3], boxes[k, 3]) - np.maximum(other[:, 1], boxes[k, 1]), 0, None)
            inter = w * h
            if np.any(inter / (areas[kept] + areas[k] - inter) > iou) or np.any(inter / areas[k] > containment):
                continue
        kept.append(k)
    return kept


def _prepare(image: np.ndarray, max_side: int, *, gray: bool = True) -> tuple[np.ndarray, float]:
    """A copy downscaled so the longest side is <= ``max_side`` (area filter), and the scale used;
    ``gray``: converted to grayscale and histogram-equalised (what the Haar cascade expects)."""
    _check_rgb(image)
    copy = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) if gray else np.ascontiguousarray(image)
    scale = min(1.0, max_side / max(copy.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(copy.shape[1] * scale)), max(1, round(copy.shape[0] * scale)))
        copy = cv2.resize(copy, size, interpolation=cv2.INTER_AREA)
    return (cv2.equalizeHist(copy) if gray else copy), scale


def _to_original(rects: np.ndarray, scale: float, shape: tuple[int, ...]) -> np.ndarray:
    """``[N, 4]`` (x, y, w, h) boxes of the downscaled copy -> (x0, y0, x1, y1) original pixels, clipped."""
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], axis=1) / scale
    boxes = np.floor(boxes + 0.5)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, shape[1])
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, shape[0])
    return boxes.astype(np.int64)


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]: ...


class _LazyModel:
    """Holds a model loaded on first use in each process; pickles without it (DataLoader workers)."""

    def __init__(self) -> None:
        self._model: object | None = None
        self._pid = -1

    def _get(self) -> object:
        if self._model is None or self._pid != os.getpid():
            self._model, self._pid = self._load(), os.getpid()
        return self._model

    def _load(self) -> object:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_pid": -1}


class HaarFaceDetector(_LazyModel):
    """OpenCV's frontal-face Haar cascade on a downscaled copy; boxes in original pixels.

    Args:
        max_side: longest side of the copy the cascade sees (pixels).
        min_face: smallest face side as a fraction of the image's shorter side (and >= 24 px in the copy).
        scale_factor, min_neighbors: ``detectMultiScale`` parameters. ``min_neighbors=8`` removed
            every false hit on the shared test videos while real faces there have >= 23 neighbours.
        iou: non-maximum suppression overlap.
    """

    def __init__(self, *, max_side: int = 640, min_face: float = 0.06, scale_factor: float = 1.1, min_neighbors: int = 8, iou: float = 0.3) -> None:
        super().__init__()
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32 pixels, got {max_side}")
        if not 0.0 <= min_face < 1.0:
            raise ValueError(f"min_face must be a fraction in [0, 1), got {min_face}")
        if not scale_factor > 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        self.max_side, self.min_face, self.scale_factor, self.min_neighbors, self.iou = max_side, min_face, scale_factor, min_neighbors, iou

    def _load(self) -> object:
        path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE)
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise ValueError(f"OpenCV could not load {path}; reinstall opencv-python-headless<5 (5.x ships no cascades)")
        return cascade

    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes ``(x0, y0, x1, y1)`` in ``image``'s pixels with their scores, best first."""
        gray, scale = _prepare(image, self.max_side)
        smallest = max(24, int(math.ceil(self.min_face * min(gray.shape))))
        if smallest > min(gray.shape):
            return []
        rects, _, weights = self._get().detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(smallest, smallest), outputRejectLevels=True,
        )
        return _finish(rects, np.ravel(weights), scale, image.shape, self.iou)


class DlibFaceDetector(_LazyModel):
    """dlib's HOG + linear SVM frontal face detector on a downscaled copy (needs ``dlib``)."""

    def __init__(self, *, max_side: int = 640, min_face: float = 0.06, upsample: int = 0, threshold: float = 0.0, iou: float = 0.3) -> None:
        super().__init__()
        if max_side < 32 or upsample < 0:
            raise ValueError(f"max_side must be >= 32 and upsample >= 0, got {max_side}, {upsample}")
        self.max_side, self.min_face, self.upsample, self.threshold, self.iou = max_side, min_face, upsample, threshold, iou

    def _load(self) -> object:
        from .landmarks import import_dlib

        return import_dlib().get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes ``(x0, y0, x1, y1)`` in ``image``'s pixels with their SVM scores, best first."""
        small, scale = _prepare(image, self.max_side, gray=False)  # HOG was trained on plain RGB
        found, scores, _ = self._get().run(small, self.upsample, self.threshold)
        rects = np.array([[r.left(), r.top(), r.width(), r.height()] for r in found], dtype=np.float64).reshape(-1, 4)
        keep = np.minimum(rects[:, 2], rects[:, 3]) >= self.min_face * min(small.shape[:2])
        return _finish(rects[keep], np.asarray(scores, dtype=np.float64)[keep], scale, image.shape, self.iou)


def _finish(rects: np.ndarray, scores: np.ndarray, scale: float, shape: tuple[int, ...], iou: float) -> list[tuple[Box, float]]:
    boxes = _to_original(rects, scale, shape)
    valid = [k for k in range(len(boxes)) if boxes[k, 2] > boxes[k, 0] and boxes[k, 3] > boxes[k, 1]]
    boxes, scores = boxes[valid], np.asarray(scores, dtype=np.float64)[valid]
    return [(tuple(int(v) for v in boxes[k]), float(scores[k])) for k in nms(boxes, scores, iou=iou)]


class MTCNNFaceDetector:
    """:class:`~.mtcnn.MTCNNDetector` behind the detector protocol; ``settings`` are
    :class:`~.mtcnn.MTCNNSettings` fields (lists become tuples, as JSON gives them)."""

    def __init__(self, **settings: Any) -> None:
        from .mtcnn import MTCNNDetector, MTCNNSettings

        values = {key: tuple(value) if isinstance(value, list) else value for key, value in settings.items()}
        self.detector = MTCNNDetector(MTCNNSettings(**values))

    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes ``(x0, y0, x1, y1)`` in ``image``'s pixels with O-Net's probability, best first."""
        return [(face.box, face.score) for face in self.detect_batch([image])[0]]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[FoundFace]]:
        """The faces of each image with their five landmarks; one batched MTCNN pass for all images."""
        for image in images:
            _check_rgb(image)
        found = []
        for image, faces in zip(images, self.detector.detect(list(images))):
            kept = []
            for box, score, points in zip(faces.boxes, faces.scores, faces.landmarks5):
                x0, y0, x1, y1 = (int(math.floor(float(v) + 0.5)) for v in box)
                if x1 > x0 and y1 > y0:
                    kept.append(FoundFace((x0, y0, x1, y1), float(score), np.asarray(points, dtype=np.float32)))
            found.append(kept)
        return found


@dataclass(frozen=True)
class FoundFace:
    """One detection: its box in original pixels, the detector's score and, when the detector gives
    them, five landmarks [5, 2] (left eye, right eye, nose, left and right mouth corner as seen in the image)."""

    box: Box
    score: float
    landmarks5: np.ndarray | None = None


def detect_batch(detector: FaceDetector, images: Sequence[np.ndarray]) -> list[list[FoundFace]]:
    """The faces of each image, best first: batched where the detector can (MTCNN), else one by one."""
    batched = getattr(detector, "detect_batch", None)
    if batched is not None:
        return batched(images)
    return [[FoundFace(box, score) for box, score in detector.detect(image)] for image in images]


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}")


_FACTORIES: dict[str, Callable[..., FaceDetector]] = {"mtcnn": MTCNNFaceDetector, "haar": HaarFaceDetector, "dlib": DlibFaceDetector}
_SHARED: dict[tuple[str, str], FaceDetector] = {}


def get_face_detector(name: str, options: dict[str, Any] | None = None) -> FaceDetector:
    """The shared detector called ``name`` (one of :data:`FACE_DETECTORS`) built with ``options``
    (its keyword settings, e.g. a checkpoint's ``preprocess.detector_options``); one per process."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown face detector {name!r}; use one of {list(FACE_DETECTORS)} (or 'none' for the whole image)")
    key = (name, json.dumps(options or {}, sort_keys=True))
    if key not in _SHARED:
        try:
            _SHARED[key] = _FACTORIES[name](**(options or {}))
        except TypeError as error:
            raise ValueError(f"invalid options {options} for the {name} face detector: {error}") from None
    return _SHARED[key]
