"""Robustness perturbations: deterministic, same size and dtype, monotone in strength."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as psnr

from deepfake_attention.data.perturb import PERTURBATIONS, apply_perturbation, perturbation_name


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A natural 96x80 RGB crop (scikit-image's bundled astronaut, her face)."""
    return np.ascontiguousarray(data.astronaut()[40:136, 170:250])


def test_every_level_keeps_size_dtype_and_is_deterministic(face: np.ndarray) -> None:
    original = face.copy()
    for kind, levels in PERTURBATIONS.items():
        for level in levels:
            out = apply_perturbation(face, kind, level, seed=3, index=5)
            assert out.shape == face.shape and out.dtype == np.uint8, (kind, level)
            assert np.array_equal(out, apply_perturbation(face, kind, level, seed=3, index=5)), (kind, level)
            assert not np.array_equal(out, face), (kind, level)
    assert np.array_equal(face, original)  # the input is never modified


def test_levels_are_monotone_in_fidelity(face: np.ndarray) -> None:
    def fidelity(kind: str) -> list[float]:
        return [psnr(face, apply_perturbation(face, kind, level)) for level in PERTURBATIONS[kind]]

    jpeg = fidelity("jpeg")  # quality 90, 70, 50
    assert jpeg[0] > jpeg[1] > jpeg[2] > 25.0, jpeg
    for kind in ("downscale", "blur", "noise"):
        values = fidelity(kind)
        assert all(a > b for a, b in zip(values, values[1:])), (kind, values)


def test_noise_is_seeded_by_seed_and_index() -> None:
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    a = apply_perturbation(grey, "noise", 10.0, seed=0, index=1)
    assert np.array_equal(a, apply_perturbation(grey, "noise", 10.0, seed=0, index=1))
    assert not np.array_equal(a, apply_perturbation(grey, "noise", 10.0, seed=0, index=2))
    assert not np.array_equal(a, apply_perturbation(grey, "noise", 10.0, seed=1, index=1))
    residual = a.astype(float) - 128
    assert residual.std() == pytest.approx(10.0, rel=0.05) and abs(residual.mean()) < 0.5
    assert np.array_equal(apply_perturbation(grey, "noise", 0.0), grey)


def test_flat_images_survive_resampling_and_blur() -> None:
    flat = np.full((37, 23, 3), 77, dtype=np.uint8)  # odd sizes: the output keeps them
    for kind, level in (("downscale", 0.25), ("blur", 4.0)):
        out = apply_perturbation(flat, kind, level)
        assert out.shape == flat.shape and np.array_equal(out, flat), kind
    assert apply_perturbation(np.zeros((3, 3, 3), np.uint8), "downscale", 0.1).shape == (3, 3, 3)
    mirrored = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)[:, ::-1]  # a view with negative strides
    assert np.array_equal(apply_perturbation(mirrored, "blur", 1.0), apply_perturbation(mirrored.copy(), "blur", 1.0))


def test_names_and_errors(face: np.ndarray) -> None:
    assert perturbation_name("jpeg", 90) == "jpeg-90"
    assert perturbation_name("downscale", 0.25) == "downscale-0.25"
    with pytest.raises(ValueError, match="unknown perturbation"):
        apply_perturbation(face, "rotate", 10)
    with pytest.raises(ValueError, match="RGB uint8"):
        apply_perturbation(face.astype(np.float32), "blur", 1.0)
    with pytest.raises(ValueError, match="RGB uint8"):
        apply_perturbation(face[..., 0], "jpeg", 90)
    with pytest.raises(ValueError, match="quality"):
        apply_perturbation(face, "jpeg", 0)
    with pytest.raises(ValueError, match="factor"):
        apply_perturbation(face, "downscale", 2.0)
    with pytest.raises(ValueError, match="sigma"):
        apply_perturbation(face, "blur", 0.0)
    with pytest.raises(ValueError, match="sigma"):
        apply_perturbation(face, "noise", -1.0)
