"""Exponential moving average of the weights (Polyak averaging, as timm's ``ModelEmaV3``): a copy of
the model whose parameters and floating-point buffers (BatchNorm's running statistics) follow the
trained ones, ``average <- decay * average + (1 - decay) * weights`` after every optimiser step.
Validation, the best weights and the release use the average; training checkpoints keep it in
``ema.safetensors`` so a resumed run continues it exactly."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from ..checkpoint import load_strict
from ..files import atomic_write_bytes

EMA_FILE = "ema.safetensors"


def check_ema_decay(decay: float | None, name: str = "optim.ema_decay") -> None:
    """``None`` (off) or a decay in (0, 1)."""
    if decay is not None and not 0.0 < decay < 1.0:
        raise ValueError(f"{name} must be in (0, 1) or none, got {decay}")


class WeightAverage:
    """The moving average of ``model``'s weights; ``module`` is a frozen copy in eval mode.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))``, so the first steps, whose
    weights are furthest from the end, weigh little; integer buffers (BatchNorm's batch count) are
    copied, not averaged."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        check_ema_decay(decay, "decay")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay applied after optimiser step ``step`` (1-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards ``model``'s current weights, after optimiser step ``step``."""
        weight = 1.0 - self.decay_at(step)
        current = model.state_dict()
        for name, average in self.module.state_dict().items():
            if average.is_floating_point():
                average.lerp_(current[name].to(average.dtype), weight)
            else:
                average.copy_(current[name])

    def save(self, folder: Path) -> None:
        """Write the average as ``folder/ema.safetensors``."""
        tensors = {name: value.detach().cpu().contiguous() for name, value in self.module.state_dict().items()}
        atomic_write_bytes(folder / EMA_FILE, save(tensors))

    def load(self, folder: Path) -> None:
        """Restore the average from ``folder/ema.safetensors`` (strict: every tensor, matching shapes)."""
        path = folder / EMA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {EMA_FILE}: it was written by a run without optim.ema_decay; resume with the same config")
        load_strict(self.module, load_file(str(path)), str(path))
