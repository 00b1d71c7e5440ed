"""Training augmentations beyond the flip: whole-image photometric changes and degradations
applied to reals and fakes alike, so that a face's overall colour, brightness, contrast, blur or
grain is never evidence (a blend is a *local* inconsistency), and a small random affine jitter of
the crop, so that no training face is ever seen pixel for pixel the same way twice. Each is a
:data:`~.datasets.Transform`: all randomness from ``rng``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .datasets import Transform
from .perturb import blur


@dataclass(frozen=True)
class ColourJitter:
    """With probability ``p``: brightness, contrast and saturation factors in ``1 +- value`` and a
    hue shift of up to ``hue`` turns, in a random order; the mask is untouched."""

    p: float = 0.8
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 0.03

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"ColourJitter.p must be in [0, 1], got {self.p}")
        if min(self.brightness, self.contrast, self.saturation) < 0 or not 0 <= self.hue <= 0.5:
            raise ValueError("ColourJitter strengths must be >= 0 and hue in [0, 0.5]")

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        if rng.random() >= self.p:
            return image, mask
        out = image.astype(np.float32)
        for step in rng.permutation(4):
            if step == 0:
                out = out * rng.uniform(1 - self.brightness, 1 + self.brightness)
            elif step == 1:
                out = (out - out.mean()) * rng.uniform(1 - self.contrast, 1 + self.contrast) + out.mean()
            elif step == 2:
                gray = out @ np.float32([0.299, 0.587, 0.114])
                out = (out - gray[..., None]) * rng.uniform(1 - self.saturation, 1 + self.saturation) + gray[..., None]
            else:
                hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
                shift = int(round(rng.uniform(-self.hue, self.hue) * 180))
                hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


@dataclass(frozen=True)
class Degrade:
    """Camera and scan degradations, each with probability ``p``: Gaussian blur (sigma in
    ``blur``, pixels) and Gaussian noise (sigma in ``noise``, grey levels). Film grain or a soft
    lens is then not evidence of a blend either."""

    p: float = 0.2
    blur: tuple[float, float] = (0.5, 1.5)
    noise: tuple[float, float] = (2.0, 8.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"Degrade.p must be in [0, 1], got {self.p}")
        if not (0 < self.blur[0] <= self.blur[1] and 0 <= self.noise[0] <= self.noise[1]):
            raise ValueError("Degrade ranges must be (low, high) with 0 < blur low and 0 <= noise low")

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        if rng.random() < self.p:
            image = blur(image, float(rng.uniform(*self.blur)))
        if rng.random() < self.p:
            noisy = image.astype(np.float32) + rng.normal(0.0, float(rng.uniform(*self.noise)), size=image.shape).astype(np.float32)
            image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        return image, mask


#: cv2 border mode of :class:`RandomAffine` per ``crop_border`` (``crops.CROP_BORDERS``): the jitter fills what
#: it uncovers as the crops themselves were padded (``shift`` crops were never padded: mirror the edge).
AFFINE_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101,
                  "shift": cv2.BORDER_REFLECT_101}


@dataclass(frozen=True)
class RandomAffine:
    """With probability ``p``: scale the crop by a factor in ``scale``, rotate it by up to
    ``rotate`` degrees and shift it by up to ``shift`` of its side in x and y, about its centre,
    image and mask together (bilinear; what comes into view is filled as ``border`` says, the mask
    with 0). Face crops are cut from detector boxes that wander by a few pixels anyway; the jitter
    keeps the model from learning any one crop of a training face by heart."""

    p: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 10.0
    shift: float = 0.05
    border: str = "constant"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"RandomAffine.p must be in [0, 1], got {self.p}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"RandomAffine.scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if not (0 <= self.rotate <= 180 and 0 <= self.shift < 0.5):
            raise ValueError(f"RandomAffine needs 0 <= rotate <= 180 and 0 <= shift < 0.5, got {self.rotate}, {self.shift}")
        if self.border not in AFFINE_BORDERS:
            raise ValueError(f"RandomAffine.border must be one of {sorted(AFFINE_BORDERS)}, got {self.border!r}")

    def matrix(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """The 2x3 map of one draw (source to output pixels)."""
        angle, factor = rng.uniform(-self.rotate, self.rotate), rng.uniform(*self.scale)
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, factor)
        matrix[:, 2] += rng.uniform(-self.shift, self.shift, size=2) * (width, height)
        return matrix

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        if rng.random() >= self.p:
            return image, mask
        height, width = image.shape[:2]
        matrix = self.matrix(height, width, rng)
        image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=AFFINE_BORDERS[self.border], borderValue=0)
        if mask is not None:
            mask = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return image, mask


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order, each with the same generator (so the whole chain is one pure function)."""

    transforms: Sequence[Transform]

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        for transform in self.transforms:
            image, mask = transform(image, mask, rng)
        return image, mask
