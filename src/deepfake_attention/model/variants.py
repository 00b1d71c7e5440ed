"""The seed's "future enhancements" as options of :class:`~.classifier.AttentionMapModel` (off by default).

- :class:`ChannelGate`: channel attention on the map the seed block sees, applied *before* the
  spatial gate (CBAM's order: channel, then spatial). ``"se"`` is squeeze-and-excitation
  (Hu et al., CVPR 2018): ``w = sigmoid(W2 relu(W1 avgpool(x)))``; ``"cbam"`` is CBAM's channel
  module (Woo et al., ECCV 2018): the same shared MLP on the average- and the max-pooled vector,
  summed before the sigmoid. Output: per-channel weights ``[B, C, 1, 1]`` in (0, 1).
- :class:`MultiScaleSpatialAttention`: the seed's spatial attention block (1x1 conv bottleneck,
  BN, ReLU, 1x1 conv, sigmoid) run on the block's input map average-pooled by each scale factor
  (1 = as is, 2 = half, 4 = quarter resolution), each map upsampled back bilinearly
  (``align_corners=False``) and fused with learned weights ``softmax(scale_logits)``; every map
  is in (0, 1), so the fused map, a convex combination, is too. Each scale has its own block:
  a 1x1 gate on a quarter-resolution map sees 4x4 neighbourhoods at once, which is the point.
  When a side is not a multiple of the scale, the last ``side % scale`` rows or columns are left
  out of the pooled map (``avg_pool2d`` floors) and the upsampled map still covers the whole input.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention_channels, spatial_attention

CHANNEL_ATTENTION = ("se", "cbam")
"""Kinds of channel attention :class:`ChannelGate` builds."""


def check_channel_attention(kind: str | None) -> str | None:
    """``kind`` when it is ``None`` or one of :data:`CHANNEL_ATTENTION`, else a ValueError saying what is allowed."""
    if kind is not None and kind not in CHANNEL_ATTENTION:
        raise ValueError(f"channel_attention must be None or one of {list(CHANNEL_ATTENTION)}, got {kind!r}")
    return kind


def check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    """Scale factors as a tuple: positive integers, strictly increasing, at least one (``(1,)`` = the seed)."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
        raise TypeError(f"attention_scales must be a sequence of integers such as (1, 2, 4), got {scales!r}")
    values = tuple(scales)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in values):
        raise ValueError(f"attention_scales must be positive integers such as (1, 2, 4), got {list(values)}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"attention_scales must be strictly increasing, got {list(values)}")
    return values


class ChannelGate(nn.Module):
    """Per-channel weights ``[B, C, 1, 1]`` in (0, 1) for a ``[B, C, H, W]`` map (module docstring).

    Args:
        channels: ``C``.
        kind: ``"se"`` or ``"cbam"``.
        reduction: the MLP's hidden width is ``max(1, C // reduction)``, the seed's bottleneck rule.
    """

    def __init__(self, channels: int, kind: str = "se", reduction: int = 4) -> None:
        super().__init__()
        if check_channel_attention(kind) is None:
            raise ValueError(f"kind must be one of {list(CHANNEL_ATTENTION)}, got None")
        self.kind = kind
        hidden = attention_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        if self.kind == "cbam":
            logits = logits + self.fc2(self.act(self.fc1(x.amax(dim=(2, 3), keepdim=True))))
        return torch.sigmoid(logits)


class MultiScaleSpatialAttention(nn.Module):
    """The seed's spatial attention at several scales, fused with learned softmax weights.

    Args:
        channels: channels of the input map.
        scales: average-pooling factors, e.g. ``(1, 2, 4)`` (see :func:`check_scales`).
        reduction: the seed's bottleneck rule for each block.

    ``forward(x [B, C, H, W])`` returns ``(fused [B, 1, H, W], per_scale [B, S, 1, H, W])``:
    the per-scale maps upsampled to ``(H, W)`` and their weighted sum. Inputs must be at least
    ``max(scales)`` pixels on each side.
    """

    def __init__(self, channels: int, scales: Sequence[int] = (1, 2, 4), reduction: int = 4) -> None:
        super().__init__()
        self.scales = check_scales(scales)
        self.blocks = nn.ModuleList(spatial_attention(channels, reduction) for _ in self.scales)
        self.scale_logits = nn.Parameter(torch.zeros(len(self.scales)))  # zeros: equal weights at the start

    def scale_weights(self) -> torch.Tensor:
        """The fusion weights ``softmax(scale_logits)``, [S], summing to 1."""
        return torch.softmax(self.scale_logits, dim=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        maps = []
        for scale, block in zip(self.scales, self.blocks):
            if scale == 1:
                maps.append(block(x))
                continue
            coarse = block(F.avg_pool2d(x, kernel_size=scale, stride=scale))
            maps.append(F.interpolate(coarse, size=size, mode="bilinear", align_corners=False))
        per_scale = torch.stack(maps, dim=1)
        fused = (per_scale * self.scale_weights().to(per_scale.dtype).view(1, -1, 1, 1, 1)).sum(dim=1)
        return fused, per_scale
