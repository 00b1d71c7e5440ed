"""A TAESD-style tiny latent autoencoder, loaded from its two weight files (never shipped).

The shared ``taef2_encoder.pth`` / ``taef2_decoder.pth`` (MIT; a tiny autoencoder distilled from
FLUX.2's) are plain state dicts of the TAESD layout: stacks of residual blocks of three 3x3
convolutions, three 2x down-samplings (strided convolutions) in the encoder, three 2x nearest
up-samplings + convolution in the decoder, and in the FLUX.2 variant a GroupNorm branch in the
blocks of the lowest resolution. Round-tripping a real face through it gives a latent decoder's
fingerprint on real content (Rajan et al., ICLR 2025). The layout is rebuilt here from the
weights' shapes; the files are read with ``torch.load(weights_only=True)`` (no unpickling of objects).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ...files import file_sha256

DOWNSAMPLE = 8
"""The latent's stride: inputs are padded to a multiple of it."""


def _conv(channels_in: int, channels_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=bias)


class _Clamp(nn.Module):
    """Soft clamp of the latent to about [-3, 3] (the decoder's first layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    """Residual block: three 3x3 convolutions (ReLU between), a skip, a ReLU; optionally first a
    1x1 -> GroupNorm(4) -> ReLU -> 1x1 branch added to the input (the FLUX.2 variant's mid blocks)."""

    def __init__(self, channels: int, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(), _conv(channels, channels))
        self.pool = (nn.Sequential(nn.Conv2d(channels, 4 * channels, 1, bias=False), nn.GroupNorm(4, 4 * channels), nn.ReLU(),
                                   nn.Conv2d(4 * channels, channels, 1, bias=False)) if group_norm else None)
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def tiny_encoder(latent_channels: int, group_norm: bool, width: int = 64) -> nn.Sequential:
    """Image in [0, 1] -> latent at 1/8 of the resolution (module indices as in the weight files)."""
    layers: list[nn.Module] = [_conv(3, width), _Block(width, False)]
    for stage in range(3):
        layers += [_conv(width, width, stride=2, bias=False)] + [_Block(width, group_norm and stage == 2) for _ in range(3)]
    return nn.Sequential(*layers, _conv(width, latent_channels))


def tiny_decoder(latent_channels: int, group_norm: bool, width: int = 64) -> nn.Sequential:
    """Latent -> image in about [0, 1] at 8x the resolution (module indices as in the weight files)."""
    layers: list[nn.Module] = [_Clamp(), _conv(latent_channels, width), nn.ReLU()]
    for stage in range(3):
        layers += [_Block(width, group_norm and stage == 0) for _ in range(3)] + [nn.Upsample(scale_factor=2), _conv(width, width, bias=False)]
    return nn.Sequential(*layers, _Block(width, False), _conv(width, 3))


class LatentAutoencoder(nn.Module):
    """Encoder + decoder of a TAESD-style tiny autoencoder; :meth:`forward` round-trips images in [0, 1]."""

    def __init__(self, latent_channels: int = 32, group_norm: bool = True) -> None:
        super().__init__()
        self.latent_channels, self.group_norm = latent_channels, group_norm
        self.encoder = tiny_encoder(latent_channels, group_norm)
        self.decoder = tiny_decoder(latent_channels, group_norm)
        self.sha256: dict[str, str] = {}

    @classmethod
    def from_files(cls, encoder: str | Path, decoder: str | Path) -> "LatentAutoencoder":
        """Load the two state-dict files (strictly: every tensor used, none missing), layout read from their shapes."""
        states = {}
        for name, path in (("encoder", Path(encoder)), ("decoder", Path(decoder))):
            if not path.is_file():
                raise FileNotFoundError(f"latent autoencoder {name} weights not found: {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise ValueError(f"{path} is not a state dict of tensors")
            states[name] = state
        if "1.weight" not in states["decoder"]:
            raise ValueError(f"{decoder} does not look like a TAESD-style decoder (no '1.weight')")
        latent_channels = int(states["decoder"]["1.weight"].shape[1])
        group_norm = any(".pool." in key for key in states["decoder"])
        model = cls(latent_channels, group_norm)
        model.encoder.load_state_dict(states["encoder"], strict=True)
        model.decoder.load_state_dict(states["decoder"], strict=True)
        model.sha256 = {"encoder": file_sha256(encoder), "decoder": file_sha256(decoder)}
        return model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> the reconstruction, same size, clamped to [0, 1] (edges padded by
        reflection to a multiple of :data:`DOWNSAMPLE`, then cropped back)."""
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % DOWNSAMPLE, (-width) % DOWNSAMPLE
        padded = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else images
        return self.decoder(self.encoder(padded))[..., :height, :width].clamp(0.0, 1.0)
