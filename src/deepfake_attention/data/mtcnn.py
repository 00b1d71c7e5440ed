"""MTCNN face detection (Zhang et al., 2016; facenet-pytorch's detector), batched over the images of one call.

Each image is downscaled so its longest side is at most ``max_side`` (area filter, as for Haar);
images of the same size share every P-Net pass, and R-Net and O-Net each run once on all
candidates of all images:

1. P-Net on facenet-pytorch's pyramid (scales ``12 / min_face * scale_factor**k`` while the
   shorter side is >= 12 px), all levels packed into one canvas (:func:`~.mtcnn_nets.pyramid_layout`;
   at most :data:`PNET_PIXELS` per pass). Cells above ``thresholds[0]``: NMS within each scale
   (IoU ``nms_thresholds[0]``) and across scales (``nms_thresholds[1]``), regression, square.
2. R-Net on 24x24 crops (``roi_align`` from the area halving of the image nearest the crop's
   scale, <= 2x2 samples per crop pixel, i.e. an area resize; black outside the image, like the
   original's zero-padded crops): ``thresholds[1]``, NMS (``nms_thresholds[2]``), regression, square.
3. O-Net on 48x48 crops: ``thresholds[2]``, five landmarks, regression, and NMS per image on the
   intersection over the *smaller* box (``nms_thresholds[3]``, facenet-pytorch's "Min" mode).

Faces at the border: P-Net must see a face with a little around it, so each pyramid level gets a
black border of ``pad`` times the 12-pixel window, i.e. of the face size that level looks for
(cheaper than padding the image by a fraction of its side; black is what R-Net and O-Net see
outside the image). And as P-Net's coarsest levels often miss a face that fills the frame, R-Net
also gets centred squares of 0.8x and 1x the shorter side and of the longer side
(``frame_proposals``). On the real-face corpus (``bench/face_detection.py``) the two raise the
240x240 tight crops found from 415 to 420 of 420 and faces cut at their centre by the frame's
edge from 113 to 222 of 420 (``pad`` 1.0 finds no more than 0.5).

Defaults are facenet-pytorch's but for O-Net's threshold, 0.8 instead of 0.7: on the corpus's 420
one-face files it cut those with an extra box from 10 to 3 (the 3 show real faces in the
background; the false ones scored 0.70-0.79) and lost no face (they score >= 0.94). In the shared
video ffpp_original_004 a lit building is found in 15 of 48 frames (28 px, O-Net 0.80-0.96);
other ``min_face`` values move such extras around rather than remove them, so the caller's
size or track rules should. Boxes are mapped back to the input image's pixels and clipped to it;
landmarks are not clipped (a point of a face cut by the border may lie outside).

The networks load lazily, once per process; the detector pickles without them, so DataLoader
workers can share one. Torch's thread count is left as the caller set it (one per worker).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_area, nms, roi_align

from .mtcnn_nets import PNet, PyramidLayout, load_net, pyramid_layout

__all__ = ["Detections", "MTCNNDetector", "MTCNNSettings"]
PNET_PIXELS = 1_000_000
"""Canvas pixels per P-Net pass (about four 1280x720 frames): larger batches run slower per image on CPU."""


@dataclass(frozen=True)
class MTCNNSettings:
    """What the MTCNN detector looks for. Validated on creation.

    Args:
        min_face: smallest face side searched for, in pixels of the detection image (the copy
            whose longest side is at most ``max_side``).
        min_face_fraction: the smallest face side as a fraction of the detection image's shorter
            side, when that is larger than ``min_face`` (the Haar detector ignores faces under 0.06).
        thresholds: score thresholds of P-Net, R-Net and O-Net.
        scale_factor: ratio between successive pyramid scales (< 1).
        nms_thresholds: overlaps of the four NMS steps: P-Net within a scale (IoU), P-Net across
            scales (IoU), R-Net (IoU), O-Net (intersection over the smaller box). facenet-pytorch's values.
        max_side: longest side of the detection image; larger images are downscaled first.
        pad: black border added around each pyramid level, as a fraction of the 12-pixel window
            (so of the face size looked for at that level); 0 turns it off.
        frame_proposals: also hand R-Net the centred squares of 0.8 and 1 times the image's shorter
            side and of its longer side, for a face that fills the frame or is cut by it (P-Net's
            coarsest levels often miss one).
    """

    min_face: float = 20.0
    min_face_fraction: float = 0.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    scale_factor: float = 0.709
    nms_thresholds: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7)
    max_side: int = 640
    pad: float = 0.5
    frame_proposals: bool = True

    def __post_init__(self) -> None:
        if not self.min_face >= 12:
            raise ValueError(f"min_face must be >= 12 pixels (P-Net's window), got {self.min_face}")
        if not 0.0 <= self.min_face_fraction < 1.0:
            raise ValueError(f"min_face_fraction must be in [0, 1), got {self.min_face_fraction}")
        if len(self.thresholds) != 3 or not all(0.0 <= t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three scores in [0, 1), got {self.thresholds}")
        if not 0.0 < self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {self.scale_factor}")
        if len(self.nms_thresholds) != 4 or not all(0.0 < t <= 1.0 for t in self.nms_thresholds):
            raise ValueError(f"nms_thresholds must be four overlaps in (0, 1], got {self.nms_thresholds}")
        if self.max_side < 32:
            raise ValueError(f"max_side must be >= 32 pixels, got {self.max_side}")
        if not 0.0 <= self.pad <= 4.0:
            raise ValueError(f"pad must be a fraction of the window in [0, 4], got {self.pad}")


@dataclass(frozen=True)
class Detections:
    """The faces of one image, best score first, in the input image's pixels.

    ``boxes`` [N, 4] float32 ``(x0, y0, x1, y1)`` (clipped to the image), ``scores`` [N] float32
    (O-Net's face probability), ``landmarks5`` [N, 5, 2] float32 ``(x, y)`` of the left eye, right
    eye, nose, left and right mouth corner as seen in the image (the left eye has the smaller x).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks5: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


class MTCNNDetector:
    """MTCNN on batches of RGB ``uint8`` images; see the module docstring for the stages.

    Args:
        settings: detection settings (default :class:`MTCNNSettings()`).
        device: where the networks run (``"cpu"`` by default; a CUDA device batches well too).
        weights_dir: a folder with ``{pnet,rnet,onet}.safetensors`` (default: the shipped weights,
            checked against their recorded SHA-256).
    """

    def __init__(self, settings: MTCNNSettings | None = None, *, device: str | torch.device = "cpu", weights_dir: str | Path | None = None) -> None:
        self.settings = MTCNNSettings() if settings is None else settings
        if not isinstance(self.settings, MTCNNSettings):
            raise TypeError(f"settings must be an MTCNNSettings, got {type(settings).__name__}")
        self.device = torch.device(device)
        self.weights_dir = weights_dir
        self._nets: tuple[torch.nn.Module, ...] | None = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_nets": None, "_pid": -1}

    def nets(self) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """P-Net, R-Net and O-Net, loaded (strictly, SHA-256 checked) on first use in this process."""
        if self._nets is None or self._pid != os.getpid():
            self._nets = tuple(load_net(name, self.weights_dir, check_sha256=self.weights_dir is None).to(self.device) for name in ("pnet", "rnet", "onet"))
            self._pid = os.getpid()
        return self._nets  # type: ignore[return-value]

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """The faces of each image (RGB ``uint8`` [H, W, 3]), one :class:`Detections` per image, in order.

        Images of different sizes may be mixed; those of the same detection size share P-Net calls.
        """
        if isinstance(images, np.ndarray):
            raise TypeError("detect takes a sequence of images; wrap a single image in a list: detect([image])")
        small, scales = zip(*(_downscale(image, self.settings.max_side) for image in images)) if len(images) else ((), ())
        if not small:
            return []
        pnet, rnet, onet = self.nets()
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(small):
            groups.setdefault(image.shape[:2], []).append(index)
        batches = [torch.from_numpy(np.stack([small[i] for i in members])).to(self.device).permute(0, 3, 1, 2).float() for members in groups.values()]
        owners = [torch.tensor(members, device=self.device) for members in groups.values()]
        found = [self._propose(pnet, batch, owner) for batch, owner in zip(batches, owners)]
        boxes, image_ids = torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])
        halvings = [_halvings(batch) for batch in batches]
        boxes, image_ids, _, _ = self._refine(rnet, halvings, owners, boxes, image_ids, 24, self.settings.thresholds[1])
        boxes, image_ids, scores, points = self._refine(onet, halvings, owners, boxes, image_ids, 48, self.settings.thresholds[2])
        return [_to_input(boxes[image_ids == k], scores[image_ids == k], points[image_ids == k], scales[k], images[k].shape) for k in range(len(small))]

    def _propose(self, pnet: PNet, batch: torch.Tensor, owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid of a batch of same-size images: square boxes [K, 4] and their image ids [K].

        All levels lie side by side in one canvas (see :func:`~.mtcnn_nets.pyramid_layout`), so P-Net runs once per
        batch rather than once per scale. Each level is an area resize of the previous one, in
        channels-last layout, which P-Net's small convolutions and pooling run fastest in.
        """
        s = self.settings
        height, width = batch.shape[2:]
        layout = pyramid_layout(height, width, max(s.min_face, s.min_face_fraction * min(height, width)), s.scale_factor, int(round(s.pad * 12)))
        boxes, ids = batch.new_zeros((0, 4)), owner.new_zeros((0,))
        if layout.levels:
            step = max(1, PNET_PIXELS // (layout.canvas[0] * layout.canvas[1]))
            logit, reg = (torch.cat(out) for out in zip(*(pnet.forward_logits(_canvas(batch[k : k + step], layout)) for k in range(0, len(batch), step))))
            cut = math.log(s.thresholds[0] / (1 - s.thresholds[0])) if s.thresholds[0] > 0 else -math.inf
            cell_level = layout.cell_level.to(batch.device)
            b, i, j = torch.nonzero((logit >= cut) & (cell_level >= 0), as_tuple=True)
            k = cell_level[i, j]
            geometry = layout.geometry.to(batch.device)[k]  # per cell: level origin x, y and scale x, y
            x0, y0 = (2 * j - geometry[:, 0]) / geometry[:, 2], (2 * i - geometry[:, 1]) / geometry[:, 3]
            cells = torch.stack([x0, y0, x0 + 12 / geometry[:, 2], y0 + 12 / geometry[:, 3]], dim=1)
            prob, reg = torch.sigmoid(logit[b, i, j]), reg[b, :, i, j]
            keep = _nms(cells, prob, b * len(layout.levels) + k, s.nms_thresholds[0])  # within each scale
            keep = keep[_nms(cells[keep], prob[keep], b[keep], s.nms_thresholds[1])]  # across scales
            side = cells[keep, 2:] - cells[keep, :2]
            boxes, ids = _square(cells[keep] + reg[keep] * torch.cat([side, side], dim=1)), owner[b[keep]]
        if s.frame_proposals:  # the face that fills the frame, which P-Net's coarsest levels often miss
            sides = sorted({0.8 * min(height, width), min(height, width), max(height, width)})
            frame = torch.tensor([[(width - d) / 2, (height - d) / 2, (width + d) / 2, (height + d) / 2] for d in sides], dtype=boxes.dtype, device=boxes.device)
            boxes, ids = torch.cat([boxes, frame.repeat(len(owner), 1)]), torch.cat([ids, owner.repeat_interleave(len(sides))])
        return boxes, ids

    def _refine(self, net: torch.nn.Module, batches: list[list[torch.Tensor]], owners: list[torch.Tensor], boxes: torch.Tensor, image_ids: torch.Tensor, size: int, threshold: float):
        """R-Net (``size`` 24) or O-Net (48) on crops of ``boxes``: the boxes kept, regressed (and for R-Net squared)."""
        s = self.settings
        crops = boxes.new_zeros((len(boxes), 3, size, size))
        # each crop from the halving whose pixels are at most twice as fine as the crop's: <= 2x2 samples per output pixel
        octave = torch.log2((boxes[:, 2:] - boxes[:, :2]).amax(dim=1).clamp(min=1) / (2 * size)).ceil().clamp(min=0)
        for halvings, owner in zip(batches, owners):
            mine = torch.nonzero(image_ids[:, None] == owner[None, :], as_tuple=False)  # (candidate, position in batch)
            level = octave[mine[:, 0]].clamp(max=len(halvings) - 1).long()
            for m in torch.unique(level).tolist():
                pick = mine[level == m]
                rois = torch.cat([pick[:, 1:].to(boxes.dtype), boxes[pick[:, 0]]], dim=1)
                crops[pick[:, 0]] = roi_align(halvings[m], rois, size, spatial_scale=0.5**m, sampling_ratio=-1, aligned=True)
        out = net(((crops - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)) if len(boxes) else (boxes.new_zeros((0,)), boxes.new_zeros((0, 4)), boxes.new_zeros((0, 10)))
        keep = out[0] > threshold
        boxes, image_ids, scores, reg = boxes[keep], image_ids[keep], out[0][keep], out[1][keep]
        side = boxes[:, 2:] - boxes[:, :2]
        if size == 24:
            keep = _nms(boxes, scores, image_ids, s.nms_thresholds[2])
            boxes = boxes[keep] + reg[keep] * torch.cat([side[keep], side[keep]], dim=1)
            return _square(boxes), image_ids[keep], scores[keep], None
        marks = out[2][keep]
        points = torch.stack([boxes[:, None, 0] + side[:, None, 0] * marks[:, :5], boxes[:, None, 1] + side[:, None, 1] * marks[:, 5:]], dim=2)
        boxes = boxes + reg * torch.cat([side, side], dim=1)
        keep = _nms_min(boxes, scores, image_ids, s.nms_thresholds[3])
        return boxes[keep], image_ids[keep], scores[keep], points[keep]


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` checked and downscaled (area filter) so its longest side is <= ``max_side``, and the scale."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"each image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"each image must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}")
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA), scale
    return np.ascontiguousarray(image), scale


def _canvas(batch: torch.Tensor, layout: PyramidLayout) -> torch.Tensor:
    """The normalised pyramid of ``batch`` in one black canvas, each level an area resize of the previous one."""
    level = ((batch - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
    canvas = batch.new_full((len(batch), 3, *layout.canvas), -127.5 * 0.0078125).contiguous(memory_format=torch.channels_last)
    for y, x, h, w in layout.levels:
        level = F.interpolate(level, size=(h, w), mode="area")
        canvas[:, :, y : y + h, x : x + w] = level
    return canvas


def _halvings(batch: torch.Tensor, smallest: int = 24) -> list[torch.Tensor]:
    """``batch`` and its successive 2x2 averages (area halvings) while the shorter side stays >= ``smallest``."""
    out = [batch]
    while min(out[-1].shape[2:]) >= 2 * smallest:
        out.append(F.avg_pool2d(out[-1], 2, ceil_mode=True))
    return out


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Squares of side max(w, h) on the same centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def _nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy IoU NMS within each group (indices kept, best first): ``torchvision.ops.nms`` on boxes
    moved apart by group, in float64. (``batched_nms`` moves them in float32, and its rounding made a
    result depend on the image's position in the batch.)"""
    if not len(boxes):
        return torch.zeros((0,), dtype=torch.int64, device=boxes.device)
    shift = groups.to(torch.float64)[:, None] * (boxes.max().double() - boxes.min().double() + 1)
    return nms(boxes.double() + shift, scores.double(), threshold)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS within each group, overlap = intersection / smaller area; indices kept, best first.

    Exact greedy result by fixed-point iteration on the pairwise matrix (Cluster-NMS): a box is kept
    iff no kept better box of its group overlaps it by more than ``threshold``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, groups = boxes[order], groups[order]
    low, high = torch.maximum(boxes[:, None, :2], boxes[None, :, :2]), torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(dim=2)
    area = box_area(boxes).clamp(min=1e-6)
    overlap = inter / torch.minimum(area[:, None], area[None, :])
    suppresses = torch.triu((overlap > threshold) & (groups[:, None] == groups[None, :]), diagonal=1)
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    for _ in range(len(boxes)):
        new = ~(suppresses & keep[:, None]).any(dim=0)
        if torch.equal(new, keep):
            break
        keep = new
    return order[keep]


def _to_input(boxes: torch.Tensor, scores: torch.Tensor, points: torch.Tensor, scale: float, shape: tuple[int, ...]) -> Detections:
    """Detection-image boxes and points -> input pixels (boxes clipped), best score first, as numpy."""
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, scores, points = boxes[order].cpu().double() / scale, scores[order].cpu(), points[order].cpu().double() / scale
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, shape[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, shape[0])
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[valid].float().numpy(), scores[valid].float().numpy(), points[valid].float().numpy())
