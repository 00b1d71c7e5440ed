"""From an RGB face crop to the model's input tensor, the same way in training and inference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..crops import CROP_BORDERS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASS_NAMES = ("real", "fake")
"""The two classes, in the model's output order: fake is index 1."""
FAKE_INDEX = 1
DETECTORS = ("none", "mtcnn", "haar", "dlib")
"""Face detectors a checkpoint may name; ``"none"`` = the whole image is the input."""


class PreprocessError(ValueError):
    """Preprocessing settings that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Preprocess:
    """How a face crop becomes the model's input: travels with the weights."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_scale: float = 1.3
    """Square crop side as a multiple of the detected face box."""
    detector: str = "none"
    """Face detector the model was trained with; ``"none"`` = the whole image is the input."""
    crop_border: str = "shift"
    """How a crop reaching past the image is made (:data:`~..crops.CROP_BORDERS`): ``shift`` (the first
    wave's crops, moved inside the image) or padded with ``constant`` black, ``replicate`` or ``reflect``."""
    detector_options: dict[str, Any] = field(default_factory=dict)
    """The detector's settings (its keyword arguments: for ``mtcnn`` e.g. ``min_face`` in pixels of the
    detection copy, ``thresholds`` of its three stages, ``pad``; for ``haar`` ``min_face`` as a share of
    the shorter side, ``min_neighbors``); empty = the detector's defaults."""
    flip_average: bool = False
    """Score each crop as the mean of its logits and those of its horizontal mirror (test-time
    flip averaging, twice the forward passes); the maps are then the mean of the two passes' maps,
    the mirror's flipped back. The checkpoint's temperature and threshold are fitted with this setting."""

    def __post_init__(self) -> None:
        if not isinstance(self.detector_options, dict) or not all(isinstance(k, str) for k in self.detector_options):
            raise PreprocessError(f"preprocess.detector_options must be a table of settings, got {self.detector_options!r}")
        if self.crop_border not in CROP_BORDERS:
            raise PreprocessError(f"preprocess.crop_border must be one of {CROP_BORDERS}, got {self.crop_border!r}")
        if self.size < 8:
            raise PreprocessError(f"preprocess.size must be >= 8, got {self.size}")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise PreprocessError("preprocess.mean and .std must have one positive std per channel")
        if self.crop_scale < 1.0:
            raise PreprocessError(f"preprocess.crop_scale must be >= 1, got {self.crop_scale}")
        if self.detector not in DETECTORS:
            raise PreprocessError(f"preprocess.detector must be one of {DETECTORS}, got {self.detector!r}")


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB ``uint8`` image to ``size`` x ``size`` (bilinear, antialiased when shrinking)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def to_tensor(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Stack same-sized RGB ``uint8`` images into a normalised float tensor [B, 3, H, W]."""
    if len(images) == 0:
        raise ValueError("no images to stack")
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return batch.sub_(mean_t).div_(std_t)
