"""Attention-map quality: focus (entropy), spatial consistency, and agreement with forgery masks.

Maps are non-negative float arrays, [H, W] (one map: functions return a float) or [B, H, W]
(a batch: functions return a float64 [B] array). Masks are [H, W] / [B, H, W] in [0, 1]: a
binary forgery mask, a soft blending mask, or the blending boundary ``4 M (1 - M)``
(:func:`boundary_map`). Maps must already have the mask's size (upsample them first, e.g.
with :func:`deepfake_attention.explain.cam.upsample_maps`).

Undefined values are NaN and are left out of :func:`summarize`'s mean (its count says how many
remained): the entropy of an all-zero map, a correlation with a constant map or mask, and any
mask metric on a sample whose binarised mask is empty (nothing to localise) or, for pixel
AUC, full. Compute mask metrics on fakes only (``labels`` in :func:`localization_report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Literal, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt
from sklearn.metrics import roc_auc_score

Metric = Literal["pearson", "cosine"]
MapFn = Callable[[np.ndarray], np.ndarray]


def as_maps(values: np.ndarray, name: str = "maps", *, unit: bool = False) -> tuple[np.ndarray, bool]:
    """``(float64 [B, H, W] array, was_single)``; checks finite, >= 0 and (``unit``) <= 1."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be [H, W] or [B, H, W], got shape {arr.shape}")
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    if arr.shape[1] * arr.shape[2] < 2:
        raise ValueError(f"{name} need at least 2 pixels, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {arr.min()}; shift or clamp them first")
    if unit and arr.size and arr.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1], got maximum {arr.max()}")
    return arr, single


def _pair(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    m, single = as_maps(maps)
    g, _ = as_maps(masks, "masks", unit=True)
    if g.shape[0] == 1 and m.shape[0] > 1:
        g = np.broadcast_to(g, m.shape)
    if m.shape != g.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} differ; resize the maps to the mask size first")
    return m, g, single


def _out(values: np.ndarray, single: bool) -> float | np.ndarray:
    return float(values[0]) if single else values


@dataclass(frozen=True)
class Summary:
    """Mean over the defined (non-NaN) values, how many there were and how many were left out."""

    mean: float | None
    count: int
    undefined: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """:class:`Summary` of per-sample values; NaNs are excluded and counted as ``undefined``."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    ok = ~np.isnan(arr)
    return Summary(mean=float(arr[ok].mean()) if ok.any() else None, count=int(ok.sum()), undefined=int((~ok).sum()))


# -- focus ---------------------------------------------------------------------------------------
def normalized_entropy(maps: np.ndarray) -> float | np.ndarray:
    """``H(p) / log(H W)`` with ``p = map / sum(map)``: 1 for a uniform map, 0 for a single pixel.

    An all-zero map has no distribution and gives NaN (left out of :func:`summarize`).
    """
    m, single = as_maps(maps)
    flat = m.reshape(m.shape[0], -1)
    total = flat.sum(axis=1, keepdims=True)
    p = np.divide(flat, total, out=np.zeros_like(flat), where=total > 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(flat.shape[1])
    return _out(np.where(total[:, 0] > 0, np.clip(entropy, 0.0, 1.0), np.nan), single)


# -- spatial consistency -------------------------------------------------------------------------
def similarity(a: np.ndarray, b: np.ndarray, metric: Metric = "pearson") -> float | np.ndarray:
    """Per-pair Pearson correlation or cosine similarity of two maps (or two batches of maps).

    NaN where undefined: a constant map (Pearson) or an all-zero map (cosine).
    """
    x, single = as_maps(a, "a")
    y, _ = as_maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"maps to compare differ in shape: {x.shape} vs {y.shape}")
    x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    if metric == "pearson":
        x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    elif metric != "cosine":
        raise ValueError(f"metric must be 'pearson' or 'cosine', got {metric!r}")
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    num = (x * y).sum(axis=1)
    return _out(np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0), single)


def hflip(x: np.ndarray) -> np.ndarray:
    """Mirror a batch [B, H, W, ...] left-right."""
    return np.asarray(x)[:, :, ::-1]


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a batch [B, H, W, ...] by (dy, dx) pixels: ``out[:, y, x] = x[:, y - dy, x - dx]``.

    Uncovered border pixels repeat the nearest edge (compare only :func:`shift_overlap`).
    """
    arr = np.asarray(x)
    h, w = arr.shape[1], arr.shape[2]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift ({dy}, {dx}) must be smaller than the image ({h} x {w})")
    pad = [(0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))] + [(0, 0)] * (arr.ndim - 3)
    padded = np.pad(arr, pad, mode="edge")
    return padded[:, max(-dy, 0): max(-dy, 0) + h, max(-dx, 0): max(-dx, 0) + w]


def shift_overlap(height: int, width: int, dy: int, dx: int) -> tuple[slice, slice]:
    """Rows and columns of a shifted frame whose content comes from inside the original."""
    return slice(max(dy, 0), height + min(dy, 0)), slice(max(dx, 0), width + min(dx, 0))


def frame_consistency(map_a: np.ndarray, map_b: np.ndarray, *, offset: tuple[int, int] = (0, 0), metric: Metric = "pearson") -> float | np.ndarray:
    """Similarity of consecutive frames' maps after alignment.

    ``offset`` = (dy, dx) is the motion from frame a to frame b (content at (y, x) in a is at
    (y + dy, x + dx) in b); map a is shifted by it and only the overlap is compared.
    """
    a, single = as_maps(map_a, "map_a")
    b, _ = as_maps(map_b, "map_b")
    if a.shape != b.shape:
        raise ValueError(f"map_a {a.shape} and map_b {b.shape} differ in shape")
    rows, cols = shift_overlap(a.shape[1], a.shape[2], *offset)
    values = similarity(shift(a, *offset)[:, rows, cols], b[:, rows, cols], metric)
    return _out(np.atleast_1d(values), single)


def sequence_consistency(maps: np.ndarray, offsets: Sequence[tuple[int, int]] | None = None, *, metric: Metric = "pearson") -> Summary:
    """Mean :func:`frame_consistency` over consecutive pairs of a [T, H, W] map sequence.

    ``offsets`` (T - 1 motions, e.g. from face-box centres) default to no motion.
    """
    m, _ = as_maps(maps)
    if m.shape[0] < 2:
        raise ValueError(f"need at least 2 frames, got {m.shape[0]}")
    offsets = [(0, 0)] * (m.shape[0] - 1) if offsets is None else list(offsets)
    if len(offsets) != m.shape[0] - 1:
        raise ValueError(f"need {m.shape[0] - 1} offsets for {m.shape[0]} frames, got {len(offsets)}")
    return summarize([frame_consistency(m[t], m[t + 1], offset=offsets[t], metric=metric) for t in range(m.shape[0] - 1)])


def transform_consistency(map_fn: MapFn, images: np.ndarray, *, transform: str = "hflip", offset: tuple[int, int] = (0, 0), metric: Metric = "pearson", base_maps: np.ndarray | None = None) -> np.ndarray:
    """Per-image similarity of ``map_fn(T(x))`` and ``T(map_fn(x))`` [B] (equivariance).

    ``images``: [B, H, W, ...] (channels last, e.g. uint8 RGB); ``map_fn`` returns [B, H, W]
    maps at the images' size. ``transform`` is ``"hflip"`` or ``"shift"`` (by ``offset``,
    compared on the overlap). ``base_maps`` reuses an already computed ``map_fn(images)``.
    """
    images = np.asarray(images)
    if images.ndim < 3:
        raise ValueError(f"images must be a batch [B, H, W, ...], got shape {images.shape}")
    base = np.asarray(map_fn(images) if base_maps is None else base_maps)
    if base.shape != images.shape[:3]:
        raise ValueError(f"map_fn must return maps of the images' size {images.shape[:3]}, got {base.shape}; upsample them")
    if transform == "hflip":
        moved, expected, rows, cols = map_fn(hflip(images)), hflip(base), slice(None), slice(None)
    elif transform == "shift":
        moved, expected = map_fn(shift(images, *offset)), shift(base, *offset)
        rows, cols = shift_overlap(images.shape[1], images.shape[2], *offset)
    else:
        raise ValueError(f"transform must be 'hflip' or 'shift', got {transform!r}")
    return np.atleast_1d(similarity(np.asarray(moved)[:, rows, cols], expected[:, rows, cols], metric))


def spatial_consistency(map_fn: MapFn, images: np.ndarray, *, offsets: Sequence[tuple[int, int]] = ((0, 4), (4, 0)), metric: Metric = "pearson") -> dict[str, Summary]:
    """:func:`transform_consistency` under a horizontal flip and each shift in ``offsets``.

    Returns ``{"hflip": Summary, "shift(dy,dx)": Summary, ...}``.
    """
    images = np.asarray(images)
    base = np.asarray(map_fn(images))
    out = {"hflip": summarize(transform_consistency(map_fn, images, transform="hflip", metric=metric, base_maps=base))}
    for dy, dx in offsets:
        values = transform_consistency(map_fn, images, transform="shift", offset=(dy, dx), metric=metric, base_maps=base)
        out[f"shift({dy},{dx})"] = summarize(values)
    return out


# -- agreement with forgery masks ----------------------------------------------------------------
def prior_map(masks: np.ndarray) -> np.ndarray:
    """The prior baseline map: the mean training mask [H, W], used as the map for every sample."""
    g, _ = as_maps(masks, "masks", unit=True)
    return g.mean(axis=0)


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """The blending boundary ``4 M (1 - M)`` of soft masks (same shape; 1 where M = 0.5).

    A hard 0/1 mask has no boundary by this formula (all zeros): pass the soft blending mask.
    Validates, then computes it in float32 as :func:`deepfake_attention.data.masks.boundary` does
    for training targets.
    """
    as_maps(masks, "masks", unit=True)
    soft = np.asarray(masks).astype(np.float32, copy=False)
    return (np.float32(4.0) * soft * (np.float32(1.0) - soft)).astype(np.float32)


def mask_pearson(maps: np.ndarray, masks: np.ndarray) -> float | np.ndarray:
    """Pearson correlation of each map with its (soft) mask, pixel by pixel."""
    m, g, single = _pair(maps, masks)
    return _out(np.atleast_1d(similarity(m, g, "pearson")), single)


def pixel_auc(maps: np.ndarray, masks: np.ndarray, *, mask_threshold: float = 0.5) -> float | np.ndarray:
    """ROC AUC of the map's values as scores for the pixels of ``mask >= mask_threshold``."""
    m, g, single = _pair(maps, masks)
    out = np.full(m.shape[0], np.nan)
    for i in range(m.shape[0]):
        labels = (g[i] >= mask_threshold).ravel()
        if 0 < labels.sum() < labels.size:
            out[i] = roc_auc_score(labels, m[i].ravel())
    return _out(out, single)


def minmax_normalize(m: np.ndarray) -> np.ndarray:
    """Min-max normalise each map of a [B, H, W] array to [0, 1]; a constant map becomes zeros."""
    flat = m.reshape(m.shape[0], -1)
    low, span = flat.min(axis=1)[:, None, None], np.ptp(flat, axis=1)[:, None, None]
    return np.divide(m - low, span, out=np.zeros_like(m), where=span > 0)


def iou(maps: np.ndarray, masks: np.ndarray, *, threshold: float = 0.5, mask_threshold: float = 0.5) -> float | np.ndarray:
    """IoU of ``minmax(map) >= threshold`` with ``mask >= mask_threshold``.

    A constant map normalises to zeros (nothing predicted); an empty mask gives NaN.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    m, g, single = _pair(maps, masks)
    pred, gt = minmax_normalize(m) >= threshold, g >= mask_threshold
    inter, union = (pred & gt).sum(axis=(1, 2)), (pred | gt).sum(axis=(1, 2))
    return _out(np.where(gt.any(axis=(1, 2)), inter / np.maximum(union, 1), np.nan), single)


def pointing_game(maps: np.ndarray, masks: np.ndarray, *, tolerance: float = 0.0, mask_threshold: float = 0.5) -> float | np.ndarray:
    """1 if the map's maximum falls inside the mask (grown by ``tolerance`` pixels), else 0.

    Ties: with several pixels at the maximum the value is the fraction of them that hit, i.e.
    the expected hit of a random tie-break (so a constant map scores the mask's area fraction,
    the chance level). An empty mask gives NaN.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    m, g, single = _pair(maps, masks)
    out = np.full(m.shape[0], np.nan)
    for i in range(m.shape[0]):
        gt = g[i] >= mask_threshold
        if not gt.any():
            continue
        region = gt if tolerance == 0 else distance_transform_edt(~gt) <= tolerance
        peak = m[i] == m[i].max()
        out[i] = (peak & region).sum() / peak.sum()
    return _out(out, single)


def energy_in_mask(maps: np.ndarray, masks: np.ndarray, *, mask_threshold: float = 0.5) -> float | np.ndarray:
    """``sum(map * [mask >= mask_threshold]) / sum(map)``; NaN for an all-zero map or empty mask."""
    m, g, single = _pair(maps, masks)
    gt = g >= mask_threshold
    total, inside = m.sum(axis=(1, 2)), (m * gt).sum(axis=(1, 2))
    ok = (total > 0) & gt.any(axis=(1, 2))
    return _out(np.divide(inside, total, out=np.full_like(total, np.nan), where=ok), single)


def localization_scores(maps: np.ndarray, masks: np.ndarray, *, threshold: float = 0.5, mask_threshold: float = 0.5, tolerance: float = 0.0) -> dict[str, np.ndarray]:
    """Every mask metric per sample: ``{"pearson", "pixel_auc", "iou", "pointing_game", "energy"}``."""
    m, g, _ = _pair(maps, masks)
    return {
        "pearson": mask_pearson(m, g),
        "pixel_auc": pixel_auc(m, g, mask_threshold=mask_threshold),
        "iou": iou(m, g, threshold=threshold, mask_threshold=mask_threshold),
        "pointing_game": pointing_game(m, g, tolerance=tolerance, mask_threshold=mask_threshold),
        "energy": energy_in_mask(m, g, mask_threshold=mask_threshold),
    }


def localization_report(maps: np.ndarray, masks: np.ndarray, *, labels: np.ndarray | None = None, prior: np.ndarray | None = None, threshold: float = 0.5, mask_threshold: float = 0.5, tolerance: float = 0.0) -> dict[str, dict[str, dict]]:
    """Mean and count of each mask metric over the fakes, next to the prior baseline's.

    ``labels`` [B] (1 = fake) keeps fakes only; ``prior`` ([H, W], :func:`prior_map` of the
    *training* masks) is scored as the map of every sample. Returns
    ``{metric: {"map": Summary dict, "baseline": Summary dict}}``. For the blending boundary,
    call it again with ``boundary_map(masks)`` (and ``prior_map(boundary_map(train_masks))``).
    """
    m, g, _ = _pair(maps, masks)
    if labels is not None:
        keep = np.asarray(labels).ravel() == 1
        if keep.shape[0] != m.shape[0]:
            raise ValueError(f"need one label per map: {keep.shape[0]} labels for {m.shape[0]} maps")
        m, g = m[keep], g[keep]
    if m.shape[0] == 0:
        raise ValueError("no fakes to score; localisation metrics are computed on fakes only")
    kwargs = {"threshold": threshold, "mask_threshold": mask_threshold, "tolerance": tolerance}
    scores = localization_scores(m, g, **kwargs)
    report = {name: {"map": summarize(v).to_dict()} for name, v in scores.items()}
    if prior is not None:
        p, _ = as_maps(prior, "prior")
        if p.shape != (1,) + m.shape[1:]:
            raise ValueError(f"prior must be one [H, W] map of the masks' size {m.shape[1:]}, got {np.shape(prior)}; use prior_map(train_masks)")
        for name, v in localization_scores(np.broadcast_to(p[0], m.shape), g, **kwargs).items():
            report[name]["baseline"] = summarize(v).to_dict()
    return report
