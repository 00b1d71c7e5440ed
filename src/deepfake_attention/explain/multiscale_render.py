"""A panel of the multi-scale attention: the face, each scale's map and the fused map.

The maps come from a model built with ``attention_scales=(1, 2, 4)`` (or any scales): its output
``attention_scales`` [B, S, 1, h, w] holds the per-scale maps (already upsampled to ``(h, w)``)
and ``attention_weights`` [B, 1, h, w] the fused one; the fusion weights are
``model.attention_conv.scale_weights()``. Every map is a sigmoid gate, drawn like the attention
gate of :func:`~.render.face_row`: colour and opacity follow the value on the absolute [0, 1] scale.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .render import TILE, _font, _tile, colorbar, overlay, stack_rows

CAPTION_HEIGHT = 48


def scale_maps(outputs: dict[str, torch.Tensor], index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(per_scale [S, h, w], fused [h, w])`` float32 of sample ``index`` of a model's output dict."""
    if "attention_scales" not in outputs:
        raise ValueError("the output has no 'attention_scales': build the model with attention_scales=(1, 2, 4) (or other scales)")
    per_scale = outputs["attention_scales"][index, :, 0].detach().float().cpu().numpy()
    fused = outputs["attention_weights"][index, 0].detach().float().cpu().numpy()
    return per_scale, fused


def multiscale_row(crop: np.ndarray, per_scale: np.ndarray, fused: np.ndarray, scales: Sequence[int], weights: Sequence[float], *, title: str = "") -> Image.Image:
    """One row: input | one overlay per scale (captioned ``1/s`` and its fusion weight) | fused map.

    Args:
        crop: the face as the model saw it, RGB uint8 [H, W, 3].
        per_scale: [S, h, w] maps in [0, 1] (any resolution; upsampled bilinearly).
        fused: [h, w] map in [0, 1].
        scales: the S scale factors; weights: the S fusion weights (summing to 1).
    """
    per_scale = np.asarray(per_scale, dtype=np.float32)
    if per_scale.ndim != 3 or len(scales) != per_scale.shape[0] or len(weights) != per_scale.shape[0]:
        raise ValueError(f"per_scale must be [S, h, w] with one scale and one weight per map; got {per_scale.shape}, {len(scales)} scales, {len(weights)} weights")
    face = np.asarray(_tile(crop))
    tiles = [face] + [overlay(face, m) for m in per_scale] + [overlay(face, np.asarray(fused, dtype=np.float32))]
    captions = ["input"] + [f"scale {'1' if s == 1 else f'1/{s}'}  w={w:.2f}" for s, w in zip(scales, weights)] + ["fused (attention_weights)"]
    row = Image.new("RGB", (TILE * len(tiles), TILE + CAPTION_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(row)
    draw.text((4, 2), (title + "  " if title else "") + "multi-scale attention gate (where it looks, 0-1)", fill=(0, 0, 0), font=_font(12))
    bar = Image.fromarray(colorbar(TILE - 60))
    for k, (tile, caption) in enumerate(zip(tiles, captions)):
        row.paste(Image.fromarray(tile), (k * TILE, CAPTION_HEIGHT))
        draw.text((k * TILE + 4, 17), caption, fill=(60, 60, 60), font=_font(11))
        if k:
            row.paste(bar, (k * TILE + 30, 33))
            draw.text((k * TILE + 18, 31), "0", fill=(60, 60, 60), font=_font(10))
            draw.text((k * TILE + TILE - 24, 31), "1", fill=(60, 60, 60), font=_font(10))
    return row


def render_multiscale(model: torch.nn.Module, outputs: dict[str, torch.Tensor], crops: Sequence[np.ndarray], *, title: str = "") -> Image.Image:
    """A panel with one :func:`multiscale_row` per crop, from a multi-scale model and its outputs."""
    if not getattr(model, "multiscale", False):
        raise ValueError("the model has a single attention scale; build it with attention_scales=(1, 2, 4) to render scales")
    if len(crops) == 0:
        raise ValueError("a panel needs at least one crop")
    weights = model.attention_conv.scale_weights().detach().float().cpu().tolist()
    rows = []
    for k, crop in enumerate(crops):
        per_scale, fused = scale_maps(outputs, k)
        rows.append(multiscale_row(crop, per_scale, fused, model.attention_scales, weights, title=f"{title} face {k}".strip() if len(crops) > 1 else title))
    return stack_rows(rows)
