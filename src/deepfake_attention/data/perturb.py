"""Deterministic image degradations for robustness evaluation (``evaluate --robustness``).

Every function takes and returns an RGB ``uint8`` image [H, W, 3] of the same size:

- ``"jpeg"``: encode/decode with OpenCV's libjpeg at ``quality`` (1-100), its default 4:2:0
  chroma subsampling (the common camera/web setting); the same encoder as the JPEG step of
  :mod:`deepfake_attention.data.synth`.
- ``"downscale"``: resize by ``factor`` in (0, 1] (each side ``max(1, round(side * factor))``)
  with area averaging (``cv2.INTER_AREA``, no aliasing) and back to the original size with
  bilinear interpolation (``cv2.INTER_LINEAR``), as a low-resolution upload looks after the
  detector upsamples it.
- ``"blur"``: Gaussian blur with standard deviation ``sigma`` pixels (OpenCV, kernel
  ``2 ceil(3 sigma) + 1``, reflect-101 borders).
- ``"noise"``: additive Gaussian noise with standard deviation ``sigma`` grey levels (0-255
  scale), rounded and clipped; the noise is drawn from
  ``default_rng(SeedSequence([seed, index]))``, so image ``index`` gets the same noise in every
  run and process, and the levels of one image share one noise pattern, scaled.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

PERTURBATIONS: dict[str, tuple[float, ...]] = {
    "jpeg": (90, 70, 50),
    "downscale": (0.5, 0.25),
    "blur": (1.0, 2.0, 4.0),
    "noise": (5.0, 10.0, 20.0),
}
"""The named levels ``evaluate --robustness`` sweeps: JPEG quality, scale factor, blur sigma
(pixels), noise sigma (grey levels)."""


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)  # OpenCV refuses views with negative strides (flips)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (1-100)."""
    if not (1 <= quality <= 100 and float(quality).is_integer()):
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality}")
    bgr = cv2.cvtColor(_check_image(image), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not JPEG-encode the image")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` in (0, 1] (area) and back to the original size (bilinear)."""
    if not 0 < factor <= 1:
        raise ValueError(f"downscale factor must be in (0, 1], got {factor}")
    arr = _check_image(image)
    h, w = arr.shape[:2]
    small = cv2.resize(arr, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` > 0 pixels."""
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0 pixels, got {sigma}")
    ksize = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(_check_image(image), (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def gaussian_noise(image: np.ndarray, sigma: float, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """Add N(0, sigma^2) noise in grey levels, seeded from ``(seed, index)``; round and clip."""
    if not sigma >= 0:
        raise ValueError(f"noise sigma must be >= 0 grey levels, got {sigma}")
    arr = _check_image(image)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    noisy = arr.astype(np.float64) + sigma * rng.standard_normal(arr.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def perturbation_name(kind: str, level: float) -> str:
    """A stable label for reports and file names, e.g. ``"jpeg-90"``, ``"downscale-0.5"``."""
    return f"{kind}-{level:g}"


def apply_perturbation(image: np.ndarray, kind: str, level: float, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """Apply one degradation (a key of :data:`PERTURBATIONS`) at ``level`` to an RGB uint8 image.

    ``seed`` and ``index`` (the image's position in the evaluated set) matter for ``"noise"``
    only. The result has the input's shape and dtype; the input is never modified.
    """
    if kind == "jpeg":
        return jpeg(image, level)
    if kind == "downscale":
        return downscale(image, level)
    if kind == "blur":
        return blur(image, level)
    if kind == "noise":
        return gaussian_noise(image, level, seed=seed, index=index)
    raise ValueError(f"unknown perturbation {kind!r}; choose one of {sorted(PERTURBATIONS)}")
