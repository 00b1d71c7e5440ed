"""Pixel operations of the forgery synthesis: appearance change, alignment, resizing, JPEG,
alpha and Poisson blending, colour transfer. Images are RGB uint8 [H, W, 3]; randomness only
through the ``rng`` argument."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def change_appearance(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """SBI's source transforms: RGB shift (p=0.3), HSV and brightness/contrast jitter, then sharpen or down-up-sample."""
    out, params = image.astype(np.float32), {}
    if rng.random() < 0.3:
        shift = rng.uniform(-20, 20, 3)
        out += shift.astype(np.float32)
        params["rgb_shift"] = shift.round(3).tolist()
    hsv = cv2.cvtColor(to_u8(out), cv2.COLOR_RGB2HSV).astype(np.float32)
    hue, sat, val = float(rng.uniform(-6, 6)), float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.85, 1.15))
    hsv[..., 0] = np.mod(hsv[..., 0] + hue, 180.0)
    hsv[..., 1] *= sat
    hsv[..., 2] *= val
    out = cv2.cvtColor(np.clip(np.rint(hsv), 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    brightness, contrast = float(rng.uniform(-0.1, 0.1)), float(rng.uniform(0.9, 1.1))
    out = out * contrast + brightness * 255.0
    params.update(hue=hue, saturation=sat, value=val, brightness=brightness, contrast=contrast)
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        factor = int(rng.choice([2, 4]))
        small = cv2.resize(to_u8(out), (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        params["downup"] = factor
    else:
        amount = float(rng.uniform(0.2, 0.5))
        out = out + amount * (out - cv2.GaussianBlur(out, (0, 0), 1.0))
        params["sharpen"] = amount
    return to_u8(out), params


def warp(image: np.ndarray, matrix: np.ndarray, *, flags: int = cv2.INTER_LINEAR, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=flags, borderMode=border)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) taking points ``src`` to ``dst``: a 2x3 matrix."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    d = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    z = np.sum(np.conj(s) * d) / max(float(np.sum(np.abs(s) ** 2)), 1e-12)
    linear = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.concatenate([linear, (mu_d - linear @ mu_s)[:, None]], axis=1)


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrink = size[0] < image.shape[1] or size[1] < image.shape[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask * source + (1 - mask) * target`` rounded to uint8 (mask [H, W] float in [0, 1])."""
    weight = mask.astype(np.float32)[..., None]
    return to_u8(weight * source.astype(np.float32) + (np.float32(1.0) - weight) * target.astype(np.float32))


def poisson_clone(source: np.ndarray, target: np.ndarray, region: np.ndarray, *, mixed: bool = False) -> np.ndarray:
    """``target`` with ``source`` Poisson-blended into ``region`` (bool [H, W], same-sized RGB images).

    ``cv2.seamlessClone`` (NORMAL_CLONE, or MIXED_CLONE when ``mixed``) also alters pixels of the
    region's bounding box outside the region; they are reset, so only ``region`` changes. The
    clone mask is a fresh 3-channel array: OpenCV 4.x overwrites a 1-channel mask in place
    (measured), so reusing one gives different pixels from one call to the next.
    """
    if not region.any():
        return target.copy()
    x, y, w, h = cv2.boundingRect(region.astype(np.uint8))
    clone = np.repeat(region[..., None].astype(np.uint8) * 255, 3, axis=2)
    cloned = cv2.seamlessClone(source, target, clone, (x + w // 2, y + h // 2), cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE)
    return np.where(region[..., None], cloned, target)


def colour_transfer(image: np.ndarray, reference: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in CIE Lab: match ``image``'s mean and std inside ``region`` to ``reference``'s."""
    src = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    mu_s, sd_s = src[region].mean(0), src[region].std(0) + 1e-3
    mu_r, sd_r = ref[region].mean(0), ref[region].std(0) + 1e-3
    return cv2.cvtColor(to_u8((src - mu_s) * (sd_r / sd_s) + mu_r), cv2.COLOR_LAB2RGB)
