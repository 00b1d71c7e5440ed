"""Train a fingerprint autoencoder once, on real faces of the training people only.

L1 reconstruction of random patches of the faces (AdamW, cosine schedule), then the PSNR of the
reconstruction of whole held-out faces (other people), as the fake is stored: clamped and rounded
to 8 bits. A decoder must reach :data:`PSNR_FLOOR` there, so that the fingerprint family is close to
its real source everywhere except in the up-sampling trace.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..media import read_image
from .nets import FACTOR, FingerprintAutoencoder

PSNR_FLOOR = 28.0
"""Mean held-out PSNR (dB) that every stored decoder reaches."""


@dataclass(frozen=True)
class TrainSettings:
    """How one decoder is trained."""

    steps: int = 1500
    batch_size: int = 16
    patch: int = 64
    lr: float = 2e-3
    width: int = 32
    latent: int = 16


def read_crops(paths: Sequence[str | Path]) -> list[np.ndarray]:
    """The RGB uint8 arrays of face crop files (an unreadable one raises :class:`~..media.MediaError` naming it)."""
    return [read_image(path) for path in paths]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    return tensor.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()


def round_trip(model: torch.nn.Module, image: np.ndarray, multiple: int = FACTOR) -> np.ndarray:
    """``image`` (RGB uint8) through ``model`` at its own size (reflect-padded to ``multiple``), as 8 bits."""
    x = to_tensor(image)[None]
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    with torch.inference_mode():
        y = model(x)[..., :height, :width]
    return to_uint8(y[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def heldout_psnr(model: torch.nn.Module, faces: Sequence[np.ndarray], multiple: int = FACTOR) -> list[float]:
    """PSNR of each held-out face against its round trip."""
    model.eval()
    return [psnr(face, round_trip(model, face, multiple)) for face in faces]


def _patches(faces: Sequence[np.ndarray], rng: np.random.Generator, count: int, size: int) -> torch.Tensor:
    out = []
    for _ in range(count):
        face = faces[int(rng.integers(len(faces)))]
        height, width = face.shape[:2]
        if min(height, width) < size:
            face = np.asarray(Image.fromarray(face).resize((max(size, width), max(size, height)), Image.BILINEAR))
            height, width = face.shape[:2]
        top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
        patch = face[top : top + size, left : left + size]
        out.append(to_tensor(patch[:, ::-1] if rng.random() < 0.5 else patch))
    return torch.stack(out)


@dataclass(frozen=True)
class TrainedDecoder:
    """What training one decoder gave."""

    upsampler: str
    seed: int
    settings: TrainSettings
    final_l1: float
    minutes: float
    psnr_mean: float
    psnr_min: float
    heldout_faces: int

    def record(self) -> dict:
        return {**asdict(self), "settings": asdict(self.settings), "psnr_floor": PSNR_FLOOR}


def train_decoder(train_faces: Sequence[np.ndarray], heldout_faces: Sequence[np.ndarray], upsampler: str, seed: int,
                  settings: TrainSettings = TrainSettings(), *, progress: bool | None = None) -> tuple[FingerprintAutoencoder, TrainedDecoder]:
    """Train one decoder of ``upsampler`` from ``seed`` (weights and patches drawn from it) and measure it."""
    if not train_faces or not heldout_faces:
        raise ValueError("need training faces and held-out faces")
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    model = FingerprintAutoencoder(upsampler, width=settings.width, latent=settings.latent).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=settings.steps, pct_start=0.05)
    recent: list[float] = []
    for _ in tqdm(range(settings.steps), desc=f"{upsampler}-s{seed}", unit="step", disable=(not progress) if progress is not None else None):
        batch = _patches(train_faces, rng, settings.batch_size, settings.patch)
        loss = F.l1_loss(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [float(loss.detach())])[-50:]
    scores = heldout_psnr(model, heldout_faces)
    result = TrainedDecoder(upsampler, seed, settings, float(np.mean(recent)), (time.perf_counter() - started) / 60, float(np.mean(scores)),
                            float(np.min(scores)), len(scores))
    return model.eval(), result
