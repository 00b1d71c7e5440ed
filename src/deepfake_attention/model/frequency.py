"""Frequency evidence beside the RGB: a fixed high-pass residual and a small learned stem on it.

A generator's decoder leaves its trace in the high frequencies (periodic up-sampling artefacts);
an ImageNet trunk, made to see objects, smooths much of that away in its first layers. The
``highpass`` option feeds the residual ``x - blur(x)`` (a fixed 3x3 binomial blur per channel, no
parameters) to a stem of stride-2 convolutions that meets the trunk's map at its stride, and the
two maps are concatenated before the seed block. Off by default: the model is then the seed's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

FREQUENCY_INPUTS = ("highpass",)
STEM_CHANNELS = 16
"""Channels the high-pass stem adds to the seed block's input."""


def check_frequency_input(value: str | None) -> str | None:
    if value is not None and value not in FREQUENCY_INPUTS:
        raise ValueError(f"frequency_input must be None or one of {FREQUENCY_INPUTS}, got {value!r}")
    return value


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """``x - blur(x)`` per channel, the blur a 3x3 binomial kernel (1 2 1)^T (1 2 1) / 16 with replicated edges."""
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (kernel[:, None] * kernel[None, :] / 16.0).expand(x.shape[1], 1, 3, 3)
    return x - F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


class HighPassStem(nn.Module):
    """High-pass residual -> ``log2(stride)`` stride-2 conv-BN-ReLU layers (one stride-1 layer when ``stride`` is 1)."""

    def __init__(self, in_channels: int, stride: int, out_channels: int = STEM_CHANNELS) -> None:
        super().__init__()
        steps = int(round(math.log2(stride))) if stride > 1 else 0
        if 2**steps != stride:
            raise ValueError(f"the stem's stride must be a power of 2, got {stride}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(max(1, steps)):
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2 if steps else 1, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(high_pass(x))
