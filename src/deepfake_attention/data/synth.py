"""Synthesized forgeries with exact masks, from real face crops alone.

Two families, both pure functions of their inputs and ``(seed, index[, epoch])``:

- ``"sbi"`` :func:`self_blend`, Self-Blended Images (Shiohara & Yamasaki, CVPR 2022) with the
  Face X-ray boundary (Li et al., CVPR 2020): two copies of one face made different (colour,
  brightness/contrast, sharpen or down-up-sampling on one of them, a small shift/scale of the
  source), a face-shaped mask (landmark hull variants, or ellipses / convex polygons over the
  face box), elastic deformation, Gaussian feathering, a blend ratio.
- ``"other"`` :func:`cross_blend`, made differently to test generalisation: a face of another
  image aligned onto the target (landmarks or boxes), lower-face / eyes / rectangle masks,
  optional colour transfer, Poisson blending (``cv2.seamlessClone``) or alpha blending, and
  stronger JPEG (quality 50-70).

In both, ``fake = M * source + (1 - M) * target`` with the soft mask ``M`` (float32 in [0, 1]),
so before post-processing the fake differs from the target only where ``M > 0``. For Poisson
blends the source is the target with the Poisson-cloned donor pasted inside the binary clone
mask (outside it, seamlessClone also shifts pixels of its bounding box; those are discarded),
so the changed region is the clone mask and ``M`` its lightly feathered version. Post-processing
(optional downscale, JPEG, resize to ``out_size``) is applied identically to the fake and to
``real`` (the target), and the mask is resized with the same interpolation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..crops import Box, central_face_box
from .masks import BOX_SHAPES, OTHER_SHAPES, SBI_SHAPES, boundary, box_mask, elastic_deform, feather, landmark_mask, other_mask
from .perturb import jpeg
from .synth_ops import blend, change_appearance, colour_transfer, poisson_clone, resize_to, similarity, warp

FAMILIES = ("sbi", "other", "fingerprint")
"""Fake families: self-blends, the differently made cross-identity blends, and generator fingerprints
(``generators.family``: a real face round-tripped through a decoder; it needs a decoder bank)."""


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the synthesis; :func:`family_config` gives each family's defaults."""

    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)
    """Inclusive range of JPEG quality."""
    downscale_prob: float = 0.3
    downscale_range: tuple[float, float] = (0.5, 1.0)
    """Down-up-sampling of the result by a factor in this range (lower-resolution media)."""
    out_size: int | None = None
    """Square output side in pixels; ``None`` keeps the crop's size."""
    crop_scale: float = 1.3
    """Face box = the central 1/crop_scale of the crop when no box is given."""

    def __post_init__(self) -> None:
        if not self.blend_ratios or any(not 0.0 < r <= 1.0 for r in self.blend_ratios):
            raise ValueError(f"blend_ratios must be a non-empty list of values in (0, 1], got {self.blend_ratios}")
        if not (0.0 <= self.jpeg_prob <= 1.0 and 0.0 <= self.downscale_prob <= 1.0):
            raise ValueError("jpeg_prob and downscale_prob must be probabilities in [0, 1]")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be (low, high) with 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if not 0.0 < self.downscale_range[0] <= self.downscale_range[1] <= 1.0:
            raise ValueError(f"downscale_range must be (low, high) with 0 < low <= high <= 1, got {self.downscale_range}")
        if self.out_size is not None and self.out_size < 8:
            raise ValueError(f"out_size must be >= 8 pixels or None, got {self.out_size}")
        if self.crop_scale < 1.0:
            raise ValueError(f"crop_scale must be >= 1, got {self.crop_scale}")


def family_config(family: str, **overrides: Any) -> SynthConfig:
    """Defaults of a family (``"other"``: JPEG quality 50-70 always, ratio 1; the others: the defaults), with ``overrides``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {list(FAMILIES)}")
    base = {"blend_ratios": (1.0,), "jpeg_prob": 1.0, "jpeg_quality": (50, 70)} if family == "other" else {}
    return SynthConfig(**{**base, **overrides})


@dataclass(frozen=True)
class SynthSample:
    """A synthesized fake with its ground truth (all arrays of the output size)."""

    image: np.ndarray
    """The fake, RGB uint8 [S, S, 3]."""
    real: np.ndarray
    """The untouched real face with the same post-processing, RGB uint8: the real counterpart."""
    target: np.ndarray
    """The blend's target copy with the same post-processing: ``image`` differs from it only where
    M > 0. It equals ``real`` unless self-blending jittered the target (SBI's 'changed target')."""
    mask: np.ndarray
    """M, float32 [S, S] in [0, 1]: the source's effective blend weight."""
    boundary: np.ndarray
    """B = 4 M (1 - M), float32 [S, S]."""
    params: dict[str, Any]
    """Every random choice, JSON-serialisable."""


def sample_rng(seed: int, index: int, epoch: int | None = None) -> np.random.Generator:
    """The generator of sample ``index``: ``SeedSequence([seed, index])`` (``[seed, epoch, index]`` with an epoch)."""
    entropy = [int(seed), int(index)] if epoch is None else [int(seed), int(epoch), int(index)]
    if any(v < 0 for v in entropy):
        raise ValueError(f"seed, epoch and index must be >= 0, got {entropy}")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def check_face(face: np.ndarray, name: str = "face") -> None:
    """Raise ``ValueError`` unless ``face`` is an RGB uint8 array [H, W, 3] of at least 16x16 pixels."""
    if not isinstance(face, np.ndarray) or face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"{name} must be an RGB uint8 array [H, W, 3], got {getattr(face, 'dtype', type(face))} {getattr(face, 'shape', '')}")
    if min(face.shape[:2]) < 16:
        raise ValueError(f"{name} must be at least 16x16 pixels, got {face.shape[1]}x{face.shape[0]}")


def _check_landmarks(landmarks: np.ndarray | None) -> np.ndarray | None:
    if landmarks is None:
        return None
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"landmarks must be [68, 2] (x, y) in crop pixels, got {points.shape}")
    return points


def postprocess(images: list[np.ndarray], rng: np.random.Generator, config: SynthConfig) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The same random downscale, JPEG and final resize applied to every image of ``images``
    (same-sized RGB uint8): with probability ``downscale_prob`` down-sampled by a factor from
    ``downscale_range``, with probability ``jpeg_prob`` JPEG-compressed at a quality from
    ``jpeg_quality``, then resized to ``out_size`` (or back to the input size). Returns the images
    and the choices made."""
    height, width = images[0].shape[:2]
    final = (config.out_size, config.out_size) if config.out_size else (width, height)
    post: dict[str, Any] = {"out_size": list(final)}
    if rng.random() < config.downscale_prob:
        factor = float(rng.uniform(*config.downscale_range))
        small = (max(8, round(width * factor)), max(8, round(height * factor)))
        images = [resize_to(im, small) for im in images]
        post["downscale"] = factor
    if rng.random() < config.jpeg_prob:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        images = [jpeg(im, quality) for im in images]
        post["jpeg_quality"] = quality
    return [resize_to(im, final) for im in images], post


def _finish(
    fake: np.ndarray, target: np.ndarray, real: np.ndarray, mask: np.ndarray, params: dict[str, Any], rng: np.random.Generator, config: SynthConfig,
) -> SynthSample:
    """Post-process fake, target and real alike; resize the mask to the output size with the same interpolation."""
    if not mask.max() > 0:
        raise ValueError("the blend mask is empty: the face box or landmarks lie outside the crop")
    (fake, target, real), params["post"] = postprocess([fake, target, real], rng, config)
    mask = np.clip(resize_to(mask.astype(np.float32), (fake.shape[1], fake.shape[0])), 0.0, 1.0)
    params["config"] = _jsonable(dataclasses.asdict(config))
    return SynthSample(image=fake, real=real, target=target, mask=mask, boundary=boundary(mask), params=params)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def self_blend(
    face: np.ndarray, seed: int, index: int, *, landmarks: np.ndarray | None = None, face_box: Box | None = None,
    config: SynthConfig | None = None, epoch: int | None = None,
) -> SynthSample:
    """A Self-Blended Image from one real face crop (RGB uint8 [H, W, 3]); see the module docstring.

    Args:
        face: the real crop; ``face_box`` (x0, y0, x1, y1) in its pixels, default :func:`central_face_box`.
        seed, index, epoch: every random choice derives from them (:func:`sample_rng`).
        landmarks: optional [68, 2] landmarks in crop pixels: SBI hull masks instead of box shapes.
    """
    check_face(face)
    points = _check_landmarks(landmarks)
    config = config or family_config("sbi")
    rng = sample_rng(seed, index, epoch)
    height, width = face.shape[:2]
    box = tuple(face_box) if face_box is not None else central_face_box(face.shape, config.crop_scale)
    side = float(max(box[2] - box[0], box[3] - box[1]))
    params: dict[str, Any] = {"family": "sbi", "seed": int(seed), "index": int(index), "epoch": epoch, "face_box": [int(v) for v in box]}
    if points is not None:
        mask, params["mask"] = landmark_mask((height, width), points, str(rng.choice(SBI_SHAPES)), rng)
    else:
        mask, params["mask"] = box_mask((height, width), box, str(rng.choice(BOX_SHAPES)), rng)
    jittered, params["appearance"] = change_appearance(face, rng)
    params["changed"] = "source" if rng.random() < 0.5 else "target"
    source, target = (jittered, face) if params["changed"] == "source" else (face, jittered)
    tx, ty = float(rng.uniform(-0.03, 0.03)) * width, float(rng.uniform(-0.015, 0.015)) * height
    scale = float(rng.uniform(0.95, 1 / 0.95))
    cx, cy = width / 2, height / 2
    matrix = np.array([[scale, 0, (1 - scale) * cx + tx], [0, scale, (1 - scale) * cy + ty]])
    source = warp(source, matrix)
    mask = warp(mask, matrix, border=cv2.BORDER_CONSTANT)
    params["affine"] = {"tx": tx, "ty": ty, "scale": scale}
    mask, params["elastic"] = elastic_deform(mask, rng, alpha=50.0 * side / 300.0, sigma=7.0 * side / 300.0)
    erode, sigma = int(rng.integers(0, max(1, int(0.04 * side)) + 1)), float(rng.uniform(0.01, 0.06)) * side
    ratio = float(rng.choice(config.blend_ratios))
    soft = feather(mask, erode=erode, sigma=sigma) * np.float32(ratio)
    params["feather"] = {"erode": erode, "sigma": sigma, "ratio": ratio}
    return _finish(blend(source, target, soft), target, face, soft, params, rng, config)


def cross_blend(
    target: np.ndarray, donor: np.ndarray, seed: int, index: int, *, target_landmarks: np.ndarray | None = None,
    donor_landmarks: np.ndarray | None = None, target_box: Box | None = None, donor_box: Box | None = None,
    config: SynthConfig | None = None, epoch: int | None = None,
) -> SynthSample:
    """The 'other' family: ``donor``'s face aligned onto ``target`` and blended (see the module docstring).

    Alignment is a least-squares similarity of the landmarks when both faces have them, else
    the donor's face box scaled and shifted onto the target's. Boxes default to :func:`central_face_box`.
    """
    check_face(target, "target")
    check_face(donor, "donor")
    t_points, d_points = _check_landmarks(target_landmarks), _check_landmarks(donor_landmarks)
    config = config or family_config("other")
    rng = sample_rng(seed, index, epoch)
    height, width = target.shape[:2]
    t_box = tuple(target_box) if target_box is not None else central_face_box(target.shape, config.crop_scale)
    d_box = tuple(donor_box) if donor_box is not None else central_face_box(donor.shape, config.crop_scale)
    params: dict[str, Any] = {"family": "other", "seed": int(seed), "index": int(index), "epoch": epoch, "face_box": [int(v) for v in t_box]}
    if t_points is not None and d_points is not None:
        matrix, params["align"] = similarity(d_points, t_points), "landmarks"
    else:
        (dx0, dy0, dx1, dy1), (tx0, ty0, tx1, ty1) = d_box, t_box
        scale = float(np.sqrt((tx1 - tx0) * (ty1 - ty0) / ((dx1 - dx0) * (dy1 - dy0))))
        shift = ((tx0 + tx1) - scale * (dx0 + dx1)) / 2, ((ty0 + ty1) - scale * (dy0 + dy1)) / 2
        matrix, params["align"] = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]]), "box"
    aligned = cv2.warpAffine(donor, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask, params["mask"] = other_mask((height, width), t_box, t_points, str(rng.choice(OTHER_SHAPES)), rng)
    binary = mask > 0.5
    binary[:2], binary[-2:], binary[:, :2], binary[:, -2:] = False, False, False, False
    if rng.random() < 0.5 and binary.sum() >= 16:
        aligned = colour_transfer(aligned, target, binary)
        params["colour_transfer"] = True
    method = str(rng.choice(["poisson", "poisson_mixed", "alpha"]))
    side = float(max(t_box[2] - t_box[0], t_box[3] - t_box[1]))
    if method.startswith("poisson") and binary.any():
        source = poisson_clone(aligned, target, binary, mixed=method == "poisson_mixed")
        erode, sigma = 0, float(rng.uniform(0.5, 2.0))
    else:
        source = aligned
        erode, sigma = int(rng.integers(0, max(1, int(0.03 * side)) + 1)), float(rng.uniform(0.01, 0.04)) * side
    ratio = float(rng.choice(config.blend_ratios))
    soft = feather(binary.astype(np.float32), erode=erode, sigma=sigma) * np.float32(ratio)
    params["blend"] = {"method": method, "erode": erode, "sigma": sigma, "ratio": ratio}
    return _finish(blend(source, target, soft), target, target, soft, params, rng, config)


