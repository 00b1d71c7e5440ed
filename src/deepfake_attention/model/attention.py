"""The seed's spatial attention and feature-extractor blocks, exactly as the seed lists them."""

from __future__ import annotations

from torch import nn


def attention_channels(input_channels: int, reduction: int = 4) -> int:
    """Width of the attention bottleneck: ``max(1, input_channels // reduction)`` (the seed's rule)."""
    if input_channels < 1 or reduction < 1:
        raise ValueError(
            f"input_channels and reduction must be >= 1, got {input_channels} and {reduction}"
        )
    return max(1, input_channels // reduction)


def spatial_attention(input_channels: int, reduction: int = 4) -> nn.Sequential:
    """The seed's ``attention_conv``: 1x1 conv bottleneck, BN, ReLU, 1x1 conv to one map, sigmoid.

    Output: ``[B, 1, H, W]`` weights in ``(0, 1)``, at the input's spatial size.
    """
    hidden = attention_channels(input_channels, reduction)
    return nn.Sequential(
        nn.Conv2d(input_channels, hidden, kernel_size=1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(),
        nn.Conv2d(hidden, 1, kernel_size=1),
        nn.Sigmoid(),
    )


def feature_extractor(input_channels: int) -> nn.Sequential:
    """The seed's ``feature_extractor``: conv 64-128-256 (3x3, padding 1) with BN+ReLU, then GAP."""
    layers: list[nn.Module] = []
    width = input_channels
    for out in (64, 128, 256):
        layers += [nn.Conv2d(width, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    layers.append(nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers)


EXTRACTOR_WIDTH = 256
"""Channels out of :func:`feature_extractor` (the seed's last conv)."""
