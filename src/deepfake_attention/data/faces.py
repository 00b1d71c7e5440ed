"""Faces in an image: boxes in original pixels and the square crops the model sees.

:func:`detect_faces` runs a detector (:mod:`.detectors`) and cuts each face's crop as a
checkpoint's preprocessing says (scale, border handling); :func:`find_faces` is what ``analyze``,
the service and ``features`` call with a checkpoint's :class:`~.transforms.Preprocess`, and
:func:`find_faces_batch` the same for the frames of a video chunk (one batched MTCNN pass).
Every face is its own :class:`FaceCrop`; an image with none gives an empty list, never a
silent whole-image guess (that only with ``--no-face-detect`` or a ``"none"`` checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..crops import Box, crop_box_for, cut_crop
from .detectors import FaceDetector, detect_batch, get_face_detector
from .transforms import Preprocess


@dataclass(frozen=True)
class FaceCrop:
    """One face: its box ``(x0, y0, x1, y1)`` in original pixels, the detector's score and the crop."""

    box: tuple[int, int, int, int]
    score: float | None
    crop: np.ndarray
    crop_box: tuple[int, int, int, int] | None = None
    """Where ``crop`` was cut from, in original pixels (``None``: unknown)."""
    landmarks: np.ndarray | None = None
    """68-point landmarks [68, 2] float32 in original pixels, when asked for."""
    landmarks5: np.ndarray | None = None
    """The detector's five landmarks [5, 2] float32 in original pixels (MTCNN), else None."""


def whole_image(image: np.ndarray) -> FaceCrop:
    """The whole image as the one 'face' (``--no-face-detect``, or a model trained without detection)."""
    height, width = image.shape[:2]
    return FaceCrop(box=(0, 0, width, height), score=None, crop=image, crop_box=(0, 0, width, height))


def detect_faces(
    image: np.ndarray,
    detector: str | FaceDetector = "haar",
    *,
    crop_scale: float = 1.3,
    crop_border: str = "shift",
    landmarks: Callable[[np.ndarray, Box], np.ndarray] | None = None,
) -> list[FaceCrop]:
    """All faces of an RGB ``uint8`` image [H, W, 3], left to right (then top to bottom).

    Each :class:`FaceCrop` has the detected ``box`` and ``crop_box`` (:func:`~..crops.crop_box_for`
    of ``crop_scale`` and ``crop_border``) in original pixels, the detector's ``score`` and five
    landmarks when it gives them, ``crop`` (a copy of the pixels inside ``crop_box``, the part
    outside the image filled as ``crop_border`` says: a padded ``crop_box`` can lie partly outside
    the image) and, when a ``landmarks`` predictor (e.g. :class:`~.landmarks.LandmarkPredictor`) is
    given, the face's [68, 2] landmarks in original pixels. No face: an empty list.
    """
    return detect_faces_batch([image], detector, crop_scale=crop_scale, crop_border=crop_border, landmarks=landmarks)[0]


def detect_faces_batch(
    images: Sequence[np.ndarray], detector: str | FaceDetector = "haar", *, crop_scale: float = 1.3, crop_border: str = "shift",
    landmarks: Callable[[np.ndarray, Box], np.ndarray] | None = None,
) -> list[list[FaceCrop]]:
    """:func:`detect_faces` of each image, the detector run once over all of them where it batches (MTCNN)."""
    found = detect_batch(get_face_detector(detector) if isinstance(detector, str) else detector, images)
    out = []
    for image, faces in zip(images, found):
        crops = []
        for face in sorted(faces, key=lambda f: f.box):
            crop_box = crop_box_for(face.box, image.shape, crop_scale, crop_border)
            points = None if landmarks is None else np.asarray(landmarks(image, face.box), dtype=np.float32)
            crops.append(FaceCrop(box=face.box, score=face.score, crop=cut_crop(image, crop_box, crop_border), crop_box=crop_box,
                                  landmarks=points, landmarks5=face.landmarks5))
        out.append(crops)
    return out


def find_faces(image: np.ndarray, preprocess: Preprocess, *, enabled: bool = True) -> list[FaceCrop]:
    """The faces a checkpoint wants scored, as its ``preprocess`` says: the whole image when its
    detector is ``"none"`` or detection is turned off (``--no-face-detect``), else every detected
    face (possibly none) of its detector and options, cropped at its crop scale and border handling."""
    return find_faces_batch([image], preprocess, enabled=enabled)[0]


def find_faces_batch(images: Sequence[np.ndarray], preprocess: Preprocess, *, enabled: bool = True) -> list[list[FaceCrop]]:
    """:func:`find_faces` of each image, detected in one batch."""
    if preprocess.detector == "none" or not enabled:
        return [[whole_image(image)] for image in images]
    detector = get_face_detector(preprocess.detector, preprocess.detector_options)
    return detect_faces_batch(images, detector, crop_scale=preprocess.crop_scale, crop_border=preprocess.crop_border)
