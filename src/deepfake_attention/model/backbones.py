"""Optional light trunks in front of the seed block (off by default: the model is then the seed's).

A trunk turns the image into a smaller, richer feature map (MobileNetV2 cut at stride 8 gives
``[B, 32, 28, 28]`` for a 224x224 face), so the seed's attention and extractor run on 1/64 of
the pixels and can see blending seams that a 1x1 gate on raw colours cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..files import file_sha256


@dataclass(frozen=True)
class TrunkSpec:
    """What the rest of the model needs to know about a trunk."""

    build: Callable[[], nn.Module]
    out_channels: int
    stride: int
    imagenet_file: str
    """File name of the ImageNet weights this trunk loads (its first 8 hex are the SHA-256 prefix)."""
    input_channels: int = 3
    description: str = ""
    """What it is, in words (the model card's)."""


def _mobilenet_v2_stride8() -> nn.Module:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(weights=None).features[:7]


def _mobilenet_v2_stride16() -> nn.Module:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(weights=None).features[:14]


def _mobilenet_v2_dilated16() -> nn.Module:
    """MobileNetV2's blocks 0-17 with the last down-sampling undone (as DeepLab's output stride 16):
    block 14 keeps stride 1 and blocks 14-17 dilate their depth-wise 3x3 by 2, so the ImageNet
    weights still load by name and see the receptive field they were trained for."""
    from torchvision.models import mobilenet_v2

    features = mobilenet_v2(weights=None).features[:18]
    for block in features[14:18]:
        depthwise = block.conv[1][0]
        depthwise.stride, depthwise.dilation, depthwise.padding = (1, 1), (2, 2), (2, 2)
    return features


TRUNKS: dict[str, TrunkSpec] = {
    "mobilenet_v2_s8": TrunkSpec(
        build=_mobilenet_v2_stride8,
        out_channels=32,
        stride=8,
        imagenet_file="mobilenet_v2-b0353104.pth",
        description="MobileNetV2's first 7 blocks (stride 8, 32 channels)",
    ),
    # a deeper cut: [B, 96, 14, 14] for a 224x224 face (a capacity arm of bench/ablation.py)
    "mobilenet_v2_s16": TrunkSpec(
        build=_mobilenet_v2_stride16,
        out_channels=96,
        stride=16,
        imagenet_file="mobilenet_v2-b0353104.pth",
        description="MobileNetV2's first 14 blocks (stride 16, 96 channels)",
    ),
    # deeper still at the same resolution: [B, 320, 14, 14] (blocks 14-17 dilated, not strided)
    "mobilenet_v2_d16": TrunkSpec(
        build=_mobilenet_v2_dilated16,
        out_channels=320,
        stride=16,
        imagenet_file="mobilenet_v2-b0353104.pth",
        description="MobileNetV2's first 18 blocks, the last four dilated instead of strided (stride 16, 320 channels)",
    ),
}


def trunk_spec(name: str) -> TrunkSpec:
    """Look up a trunk by name, with a clear error listing the known ones."""
    try:
        return TRUNKS[name]
    except KeyError:
        raise ValueError(f"unknown trunk {name!r}; choose one of {sorted(TRUNKS)} or None") from None


def imagenet_state_dict(name: str, path: str | Path | None = None, *, download: bool = False) -> dict[str, torch.Tensor]:
    """The trunk's ImageNet weights, keyed like the trunk module (``0.0.weight`` ...).

    ``path`` is a local copy of torchvision's file (checked against the SHA-256 prefix in its
    name, loaded with ``weights_only=True``). With ``download=True`` and no path, torchvision
    fetches it into its cache; nothing is fetched unless asked.
    """
    spec = trunk_spec(name)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"trunk weights file not found: {path}")
        expected = spec.imagenet_file.rsplit("-", 1)[-1].split(".")[0]
        actual = file_sha256(path)
        if not actual.startswith(expected):
            raise ValueError(
                f"{path} has SHA-256 {actual[:16]}..., expected it to start with {expected} "
                f"({spec.imagenet_file}); refusing to load a different file"
            )
        full = torch.load(path, map_location="cpu", weights_only=True)
    elif download:
        from torchvision.models import MobileNet_V2_Weights

        full = MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    else:
        raise ValueError("give the ImageNet weights file as `path`, or pass download=True to fetch it")
    trunk_keys = spec.build().state_dict().keys()
    state = {key: full[f"features.{key}"] for key in trunk_keys if f"features.{key}" in full}
    missing = [key for key in trunk_keys if key not in state]
    if missing:
        raise ValueError(f"ImageNet file lacks trunk weights {missing[:5]} (and {max(0, len(missing) - 5)} more)")
    return state
