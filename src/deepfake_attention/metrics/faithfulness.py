"""Do the maps explain the model? Average Drop / Increase in Confidence, deletion / insertion,
and the model-randomisation sanity check.

- Average Drop % and % Increase in Confidence follow Chattopadhyay et al. (Grad-CAM++, WACV
  2018, Sec. 6.1): with ``Y_i`` the model's P(fake) on the full image and ``O_i`` on the
  explanation image (the uint8 image times the map in [0, 1], in pixel space, before the
  mean/std normalisation: :func:`explanation_images`), over correctly classified fakes,
  ``Average Drop = 100/N sum_i max(0, Y_i - O_i) / Y_i`` (lower is better) and
  ``Increase in Confidence = 100/N sum_i [Y_i < O_i]`` (higher is better).
- Deletion / insertion (Petsiuk et al., RISE, BMVC 2018): pixels are removed from the image
  (set to a baseline) or added to the baseline in order of decreasing map value over ``steps``
  equal steps; the AUC (trapezoid rule over the fraction of pixels, [0, 1]) of P(fake) is low
  for a good map under deletion and high under insertion.
- Sanity check (Adebayo et al., NeurIPS 2018): maps of the trained model against maps of a
  model with re-initialised weights. A method that depends on the model shows LOW similarity
  (Spearman rank correlation and SSIM near 0); high similarity means the maps would look the
  same for any weights, i.e. they explain the input, not the detector.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import cv2
import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn
from tqdm.auto import tqdm

from .attention import Summary, as_maps, minmax_normalize, similarity, summarize

Predict = Callable[[np.ndarray], Any]


def _probs_pair(full: np.ndarray, explained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, o = np.asarray(full, dtype=np.float64).ravel(), np.asarray(explained, dtype=np.float64).ravel()
    if y.shape != o.shape or y.size == 0:
        raise ValueError(f"need one explanation-image probability per full-image probability, got {y.size} and {o.size}")
    if not (np.isfinite(y).all() and np.isfinite(o).all()):
        raise ValueError("probabilities contain NaN or infinite values")
    if (y <= 0).any():
        raise ValueError("full-image probabilities must be > 0 (Average Drop divides by them); pass correctly classified fakes only")
    return y, o


def average_drop(full_probs: np.ndarray, explanation_probs: np.ndarray) -> float:
    """Average Drop % = ``100/N sum_i max(0, Y_i - O_i) / Y_i`` (Grad-CAM++ Sec. 6.1)."""
    y, o = _probs_pair(full_probs, explanation_probs)
    return float(100.0 * np.mean(np.maximum(0.0, y - o) / y))


def increase_in_confidence(full_probs: np.ndarray, explanation_probs: np.ndarray) -> float:
    """% Increase in Confidence = ``100/N sum_i [Y_i < O_i]`` (Grad-CAM++ Sec. 6.1)."""
    y, o = _probs_pair(full_probs, explanation_probs)
    return float(100.0 * np.mean(y < o))


def faithfulness_report(full_probs: np.ndarray, explanation_probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float | int | None]:
    """Both Grad-CAM++ figures over the correctly classified fakes (label 1, ``Y >= threshold``)."""
    y, o = np.asarray(full_probs, dtype=np.float64).ravel(), np.asarray(explanation_probs, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if not (y.shape == o.shape == lab.shape):
        raise ValueError(f"full_probs, explanation_probs and labels must have one value per sample, got {y.size}, {o.size}, {lab.size}")
    keep = (lab == 1) & (y >= threshold)
    if not keep.any():
        return {"average_drop": None, "increase_in_confidence": None, "count": 0}
    return {"average_drop": average_drop(y[keep], o[keep]), "increase_in_confidence": increase_in_confidence(y[keep], o[keep]), "count": int(keep.sum())}


def _check_images(images: np.ndarray, maps: np.ndarray, *, unit: bool) -> tuple[np.ndarray, np.ndarray]:
    imgs = np.asarray(images)
    if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be a uint8 RGB batch [B, H, W, 3], got {imgs.dtype} {imgs.shape}")
    m, _ = as_maps(maps, unit=unit)
    if m.shape != imgs.shape[:3]:
        raise ValueError(f"maps {m.shape} must match the images' [B, H, W] {imgs.shape[:3]}; upsample them first")
    return imgs, m


def explanation_images(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """The Grad-CAM++ "explanation map" images: ``round(image * map)`` as uint8 [B, H, W, 3].

    ``maps`` [B, H, W] must lie in [0, 1] (Grad-CAM++ maps are min-max normalised already);
    feed the result through the model's usual preprocessing to get ``O_i``.
    """
    imgs, m = _check_images(images, maps, unit=True)
    return np.clip(np.rint(imgs * m[..., None]), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CausalCurves:
    """Deletion or insertion curves [B, steps + 1] of P(fake) over the fraction of pixels moved."""

    mode: str
    fractions: np.ndarray
    curves: np.ndarray
    auc: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "auc": summarize(self.auc).to_dict(), "fractions": self.fractions.tolist(), "mean_curve": self.curves.mean(axis=0).tolist()}


def _baselines(images: np.ndarray, kind: str, blur_sigma: float) -> np.ndarray:
    if kind == "zero":
        return np.zeros_like(images)
    if kind == "blur":  # a Gaussian of +-3 sigma with reflected borders, as data.perturb's robustness blur
        if not blur_sigma > 0:
            raise ValueError(f"blur sigma must be > 0 pixels, got {blur_sigma}")
        ksize = 2 * math.ceil(3 * blur_sigma) + 1
        return np.stack([cv2.GaussianBlur(np.ascontiguousarray(img), (ksize, ksize), sigmaX=blur_sigma, sigmaY=blur_sigma, borderType=cv2.BORDER_REFLECT_101) for img in images])
    if kind == "mean":
        return np.broadcast_to(np.rint(images.mean(axis=(1, 2), keepdims=True)).astype(np.uint8), images.shape)
    raise ValueError(f"baseline must be 'zero', 'blur' or 'mean', got {kind!r}")


def deletion_insertion(predict: Predict, images: np.ndarray, maps: np.ndarray, *, mode: Literal["deletion", "insertion"] = "deletion", steps: int = 16, baseline: str | None = None, blur_sigma: float = 5.0, batch_size: int = 64, progress: bool | None = None) -> CausalCurves:
    """Deletion / insertion curves and AUCs (RISE) with any model.

    ``predict(images_uint8 [n, H, W, 3]) -> [n]`` P(fake); ``images`` uint8 [B, H, W, 3];
    ``maps`` [B, H, W] (any non-negative scale). Pixels are ranked by decreasing map value
    (ties: row-major order, stable); step ``k`` of ``steps`` moves the first
    ``floor(k H W / steps)`` of them. ``baseline`` (``"zero"``, ``"blur"`` (Gaussian,
    ``blur_sigma`` pixels) or ``"mean"`` colour) defaults to RISE's: zero for deletion, blur for
    insertion. Images are scored in batches of ``batch_size``.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    imgs, m = _check_images(images, maps, unit=False)
    b, h, w = m.shape
    base = _baselines(imgs, baseline or ("zero" if mode == "deletion" else "blur"), blur_sigma)
    order = np.argsort(-m.reshape(b, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(h * w), order.shape), axis=1)
    rank = rank.reshape(b, h, w)
    counts = (np.arange(steps + 1) * h * w) // steps
    jobs = [(i, k) for i in range(b) for k in range(steps + 1)]
    probs = np.empty(len(jobs))
    for start in tqdm(range(0, len(jobs), batch_size), desc=mode, disable=None if progress is None else not progress, leave=False):
        chunk = jobs[start:start + batch_size]
        moved = np.stack([rank[i] < counts[k] for i, k in chunk])[..., None]
        src, dst = imgs[[i for i, _ in chunk]], base[[i for i, _ in chunk]]
        batch = np.where(moved, dst, src) if mode == "deletion" else np.where(moved, src, dst)
        out = np.asarray(predict(batch), dtype=np.float64).ravel()
        if out.shape != (len(chunk),):
            raise ValueError(f"predict must return one probability per image: {len(chunk)} images gave shape {out.shape}")
        probs[start:start + len(chunk)] = out
    curves = probs.reshape(b, steps + 1)
    fractions = counts / (h * w)
    return CausalCurves(mode=mode, fractions=fractions, curves=curves, auc=np.trapezoid(curves, fractions, axis=1))


# -- sanity check: model randomisation -----------------------------------------------------------
def spearman_similarity(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps [B] (Pearson of average ranks; NaN if constant)."""
    a, _ = as_maps(maps_a, "maps_a")
    b, _ = as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps to compare differ in shape: {a.shape} vs {b.shape}")
    ranks_a = rankdata(a.reshape(a.shape[0], -1), axis=1).reshape(a.shape)
    ranks_b = rankdata(b.reshape(b.shape[0], -1), axis=1).reshape(b.shape)
    return np.atleast_1d(similarity(ranks_a, ranks_b, "pearson"))


def ssim_similarity(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """SSIM (scikit-image, data range 1, 7x7 window or the largest odd one that fits) of min-max normalised maps [B]."""
    a, _ = as_maps(maps_a, "maps_a")
    b, _ = as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps to compare differ in shape: {a.shape} vs {b.shape}")
    side = min(a.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs maps of at least 3 x 3 pixels, got {a.shape[1:]}")
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise ImportError("ssim_similarity needs scikit-image: pip install 'deepfake-attention[train]'") from None
    a, b = minmax_normalize(a), minmax_normalize(b)
    return np.array([structural_similarity(x, y, data_range=1.0, win_size=win) for x, y in zip(a, b)])


def randomization_check(trained: np.ndarray | Callable[[np.ndarray], Any], randomized: np.ndarray | Callable[[np.ndarray], Any], images: np.ndarray | None = None) -> dict[str, Summary]:
    """Similarity of the trained model's maps and a randomised model's maps (lower is better).

    ``trained`` / ``randomized``: [B, H, W] maps, or callables ``images -> maps`` applied to
    ``images``. Returns ``{"spearman": Summary, "ssim": Summary}``.
    """
    def resolve(source: Any, name: str) -> np.ndarray:
        if callable(source):
            if images is None:
                raise ValueError(f"{name} is a callable; pass images to compute its maps")
            source = source(images)
        return np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source)

    a, b = resolve(trained, "trained"), resolve(randomized, "randomized")
    return {"spearman": summarize(spearman_similarity(a, b)), "ssim": summarize(ssim_similarity(a, b))}


def cascading_layers(model: nn.Module) -> list[str]:
    """Names of the modules that hold parameters of their own, output side first.

    Cascading randomisation re-initialises ``layers[:i + 1]`` for i = 0, 1, ...; independent
    randomisation one ``layers[i]`` at a time (pass either to :func:`randomize_layers`).
    Registration order is taken as the forward order.
    """
    names = [name for name, module in model.named_modules() if name and any(True for _ in module.parameters(recurse=False))]
    return names[::-1]


def randomize_layers(model: nn.Module, names: Sequence[str], *, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose named modules are re-initialised (``reset_parameters``).

    Deterministic per ``seed`` (a forked torch RNG: the global RNG is left untouched); BatchNorm
    running statistics are reset too. The original model is not modified.
    """
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"no module named {unknown[:3]} in the model; see cascading_layers(model)")
    clone = copy.deepcopy(model)
    clone_modules = dict(clone.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            resettable = [m for m in clone_modules[name].modules() if hasattr(m, "reset_parameters")]
            if not resettable:
                raise ValueError(f"module {name!r} has no reset_parameters(); pick a layer with weights")
            for module in resettable:
                module.reset_parameters()
    return clone
