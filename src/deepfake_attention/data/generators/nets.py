"""Small encoder-decoders that carry a generator's up-sampling fingerprint.

A generator's last layers up-sample: transposed convolutions, nearest or bilinear up-sampling
followed by a convolution, or sub-pixel convolution (pixel shuffle). Each leaves its own periodic
trace in the spectrum (Zhang, Karaman & Chang, WIFS 2019). A real face passed through a small
autoencoder whose decoder up-samples one of these ways keeps its content and gains that trace:
a fake made without any generated face. The encoder down-samples by 4 (two stride-2 convolutions);
the decoder up-samples back with the chosen kind.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

UPSAMPLERS = ("transposed", "nearest", "bilinear", "pixelshuffle")
"""The decoder's up-sampling kinds, each a fingerprint family of its own."""
FACTOR = 4
"""Spatial down-sampling of the encoder (inputs are padded to a multiple of it)."""


def _up(kind: str, channels_in: int, channels_out: int) -> nn.Module:
    """One 2x up-sampling step of ``kind``."""
    if kind == "transposed":
        return nn.ConvTranspose2d(channels_in, channels_out, kernel_size=4, stride=2, padding=1)
    if kind in ("nearest", "bilinear"):
        mode = {"mode": kind} if kind == "nearest" else {"mode": kind, "align_corners": False}
        return nn.Sequential(nn.Upsample(scale_factor=2, **mode), nn.Conv2d(channels_in, channels_out, 3, padding=1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(channels_in, 4 * channels_out, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown up-sampling kind {kind!r}; use one of {UPSAMPLERS}")


class FingerprintAutoencoder(nn.Module):
    """Image in [0, 1] ``[B, 3, H, W]`` (H, W multiples of :data:`FACTOR`) -> its reconstruction.

    Args:
        upsampler: one of :data:`UPSAMPLERS`.
        width: channels of the full- and half-resolution layers (the quarter-resolution ones have twice).
        latent: channels of the bottleneck at a quarter of the resolution (16: a third of the pixels' values).
    """

    def __init__(self, upsampler: str = "transposed", width: int = 32, latent: int = 16) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown up-sampling kind {upsampler!r}; use one of {UPSAMPLERS}")
        self.upsampler, self.width, self.latent = upsampler, width, latent
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), act,
            nn.Conv2d(width, width, 3, stride=2, padding=1), act,
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), act,
            nn.Conv2d(2 * width, latent, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 2 * width, 3, padding=1), act,
            _up(upsampler, 2 * width, width), act,
            _up(upsampler, width, width), act,
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % FACTOR or images.shape[3] % FACTOR:
            raise ValueError(f"expected [B, 3, H, W] with H and W multiples of {FACTOR}, got {tuple(images.shape)}")
        return self.decoder(self.encoder(images))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (stored beside the weights)."""
        return {"upsampler": self.upsampler, "width": self.width, "latent": self.latent}
