"""Training augmentations beyond the flip: whole-image photometric changes applied to reals and
fakes alike, so that a face's overall colour, brightness or contrast is never evidence (a blend
is a *local* inconsistency). Each is a :data:`~.datasets.Transform`: all randomness from ``rng``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .datasets import Transform


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
class Compose:
    """Apply transforms in order, each with the same generator (so the whole chain is one pure function)."""

    transforms: Sequence[Transform]

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        for transform in self.transforms:
            image, mask = transform(image, mask, rng)
        return image, mask
