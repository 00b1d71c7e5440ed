"""A tiny learnable task for training tests: importable by spawned worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepfake_attention.train import TrainConfig, load_config


class PatchDataset(Dataset):
    """Reals are smooth noise; fakes carry a brighter square patch whose mask is known."""

    def __init__(self, n: int, size: int = 24, seed: int = 0) -> None:
        self.n, self.size, self.seed, self.epoch = n, size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = rng.normal(0.0, 0.3, size=(3, self.size, self.size)).astype(np.float32)
        mask = np.zeros((1, self.size, self.size), dtype=np.float32)
        label = index % 2
        if label:
            y, x = rng.integers(0, self.size - 8, size=2)
            mask[:, y : y + 8, x : x + 8] = 1.0
            image[:, y : y + 8, x : x + 8] += 1.5
        return {"image": torch.from_numpy(image), "label": label, "mask": torch.from_numpy(mask), "has_mask": bool(label), "index": index}


def tiny_config(out: Path, **overrides) -> TrainConfig:
    cfg = load_config(None, [
        "model.trunk=none", "model.feature_dim=16", "model.dropout=0.3", "data.batch_size=8", "data.size=24",
        "optim.lr=3e-3", "optim.warmup_steps=3", "optim.epochs=3", "run.checkpoint_every=4", "run.log_every=2",
        f"run.out='{out}'", "run.tensorboard=false", "loss.mask=0.5", "loss.entropy=0.01", "loss.tv=0.01", "loss.sparsity=0.01",
    ] + [f"{k}={v}" for k, v in overrides.items()])
    return cfg
