"""bench/fingerprint_spectrum.py's features and unit AUC, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from deepfake_attention.recipe.faces import FaceInfo

from .conftest import load_bench

spectrum = load_bench("fingerprint_spectrum")
SIZE = 128
"""With 64 profile bins over a radius of 64 px every ring holds pixels."""


def _grating(cycles: int) -> np.ndarray:
    """An RGB uint8 cosine grating of ``cycles`` periods across the image, along x."""
    x = np.arange(SIZE)
    row = 127.5 + 100 * np.cos(2 * np.pi * cycles * x / SIZE)
    return np.repeat(np.tile(row, (SIZE, 1))[..., None], 3, axis=2).astype(np.uint8)


def test_a_grating_peaks_in_its_cell_and_a_blur_lowers_the_high_rings() -> None:
    bins, grid = spectrum.PROFILE_BINS, spectrum.GRID
    cycles = 20
    features = spectrum.spectrum_features(_grating(cycles), SIZE)
    means, maxima = features[bins:bins + grid * grid], features[bins + grid * grid:]
    assert features.shape == (bins + 2 * grid * grid,)
    cell = SIZE // grid
    peak = np.unravel_index(int(np.argmax(maxima)), (grid, grid))
    assert peak in {(SIZE // 2 // cell, (SIZE // 2 + cycles) // cell), (SIZE // 2 // cell, (SIZE // 2 - cycles) // cell)}
    assert np.all(maxima >= means - 1e-12)
    noise = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    blurred = ndimage.gaussian_filter(noise.astype(np.float64), sigma=(1.5, 1.5, 0)).round().astype(np.uint8)
    sharp, soft = (spectrum.spectrum_features(im, SIZE)[:bins] for im in (noise, blurred))
    assert np.all(soft[bins // 2:] < sharp[bins // 2:] - 2.0)  # the outer half of the rings: far less power after the blur


def test_profile_is_the_ring_mean_of_the_log_power() -> None:
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    grey = image.astype(np.float64).mean(axis=2) / 255.0
    grey -= grey.mean()
    power = np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey * np.outer(np.hanning(SIZE), np.hanning(SIZE))))) ** 2 + 1e-10)
    rows, cols = np.indices(power.shape)
    radius = np.sqrt((rows - SIZE // 2) ** 2 + (cols - SIZE // 2) ** 2) / (SIZE / 2)
    labels = np.floor(radius * spectrum.PROFILE_BINS).astype(int)
    want = ndimage.mean(power, labels=labels, index=np.arange(spectrum.PROFILE_BINS))
    assert spectrum.spectrum_features(image, SIZE)[: spectrum.PROFILE_BINS] == pytest.approx(want)


def test_unit_auc_averages_a_persons_frames() -> None:
    faces = [FaceInfo(crop=f"/x/faces/{name}.png", split="test", group="video" if name.startswith("v") else "photo", file=file, person="p0",
                      frame=None, score=None) for name, file in (("v-f0", "clip.mp4"), ("v-f1", "clip.mp4"), ("a", "a.jpg"), ("b", "b.jpg"))]
    paths = ["images/real/v-f0.png", "images/real/v-f1.png", "images/fake/v-f0-n0.png", "images/fake/v-f1-n0.png",
             "images/real/a.png", "images/fake/a-n0.png", "images/real/b.png", "images/fake/b-n0.png"]
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.4, 0.35, 0.6, 0.7, 0.8])
    # units: clip real 0.5, clip fake 0.3, a real 0.35, a fake 0.6, b real 0.7, b fake 0.8 (crop by crop the AUC would be 0.5)
    want = roc_auc_score([0, 1, 0, 1, 0, 1], [0.5, 0.3, 0.35, 0.6, 0.7, 0.8])
    assert spectrum.unit_auc(paths, labels, scores, faces) == pytest.approx(want)
