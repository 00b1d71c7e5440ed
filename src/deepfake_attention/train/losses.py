"""Cross-entropy plus the seed's attention-aware losses.

- regularisers of the attention map: normalised entropy (focus), total variation (smoothness),
  mean (sparsity);
- auxiliary supervision of the attention map by the fake's blend mask (or its blending
  boundary 4M(1-M)) on fakes that have one: the per-sample BCE summed over those fakes and
  divided by the batch size. Reals get no mask loss, so the gate is not trained to be the
  detector.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import LossSection

_EPS = 1e-6


def normalised_entropy(maps: torch.Tensor) -> torch.Tensor:
    """H(p) / log(HW) per map, p = map / sum(map); maps [B, 1, h, w] non-negative -> [B]."""
    flat = maps.flatten(1).float()
    p = flat / flat.sum(dim=1, keepdim=True).clamp_min(_EPS)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1) / math.log(flat.shape[1])


def total_variation(maps: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring cells, per map [B]."""
    maps = maps.float()
    dx = (maps[..., :, 1:] - maps[..., :, :-1]).abs().flatten(1).mean(dim=1)
    dy = (maps[..., 1:, :] - maps[..., :-1, :]).abs().flatten(1).mean(dim=1)
    return dx + dy


def mask_targets(masks: torch.Tensor, size: tuple[int, int], target: str) -> torch.Tensor:
    """Masks [B, 1, H, W] area-averaged to the map's ``size``; ``boundary`` gives 4M(1-M) there."""
    resized = F.adaptive_avg_pool2d(masks.float(), size)
    return 4.0 * resized * (1.0 - resized) if target == "boundary" else resized


def training_losses(
    logits: torch.Tensor,
    attention: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    has_mask: torch.Tensor | None,
    cfg: LossSection,
    mask_labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """All loss terms (unweighted) and ``total`` (weighted sum), in fp32.

    ``mask_labels``: the labels of the attention maps' samples when they are not those of the
    logits (clip batches: one label per clip, one map per frame); default ``labels``.
    """
    map_labels = labels if mask_labels is None else mask_labels
    terms = {"ce": F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)}
    total = terms["ce"]
    if cfg.entropy:
        terms["entropy"] = normalised_entropy(attention).mean()
        total = total + cfg.entropy * terms["entropy"]
    if cfg.tv:
        terms["tv"] = total_variation(attention).mean()
        total = total + cfg.tv * terms["tv"]
    if cfg.sparsity:
        terms["sparsity"] = attention.float().mean()
        total = total + cfg.sparsity * terms["sparsity"]
    if cfg.mask and masks is not None and has_mask is not None:
        # per-sample BCE on fakes with masks, summed and divided by the whole batch size: a mean over
        # the selected samples would weigh ranks with few fakes up and break DDP's equivalence.
        selected = has_mask.bool() & (map_labels == 1)
        if bool(selected.any()):
            target = mask_targets(masks[selected], tuple(attention.shape[-2:]), cfg.mask_target)
            predicted = attention[selected].float().clamp(_EPS, 1.0 - _EPS)
            per_sample = F.binary_cross_entropy(predicted, target, reduction="none").flatten(1).mean(dim=1)
            terms["mask"] = per_sample.sum() / map_labels.numel()
        else:
            terms["mask"] = logits.new_zeros((), dtype=torch.float32)
        total = total + cfg.mask * terms["mask"]
    terms["total"] = total
    return terms
