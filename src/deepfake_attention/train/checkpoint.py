"""Training checkpoints (DESIGN.md): ``model.safetensors`` + ``optimizer.safetensors`` +
``trainer_state.json`` + ``train_config.json`` + a release ``config.json``, written atomically
into ``checkpoints/step-XXXXXXX/`` with a ``latest`` pointer. Nothing is pickled."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save

from ..checkpoint import CheckpointConfig, load_strict, save_checkpoint
from ..files import atomic_write_bytes, atomic_write_json
from ..model import AttentionMapModel

LATEST = "latest"


@dataclass
class TrainerState:
    """Where a run is: enough to continue exactly."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_val_loss: float = float("inf")
    best_val_auc: float = -1.0
    """The best weights' validation AUC (-1: none yet; also after resuming a run that selected on the loss)."""
    best_step: int = -1
    bad_evals: int = 0
    torch_rng: str = ""
    """torch's global CPU generator state (dropout), base64."""
    cuda_rng: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["best_val_loss"] = None if self.best_val_loss == float("inf") else self.best_val_loss
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainerState":
        data = dict(data)
        if data.get("best_val_loss") is None:
            data["best_val_loss"] = float("inf")
        return cls(**data)


def capture_rng(state: TrainerState) -> None:
    state.torch_rng = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
    if torch.cuda.is_available():
        state.cuda_rng = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]


def restore_rng(state: TrainerState) -> None:
    if state.torch_rng:
        torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state.torch_rng)), dtype=torch.uint8))
    if state.cuda_rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in state.cuda_rng])


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[bytes, dict[str, Any]]:
    """The optimiser state as safetensors bytes (tensors) and JSON (everything else)."""
    full = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in full["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return save(tensors) if tensors else save({"_empty": torch.zeros(0)}), {"param_groups": full["param_groups"], "scalars": scalars}


def optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key == "_empty":
            continue
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_checkpoint(
    out_dir: Path, model: AttentionMapModel, optimizer: torch.optim.Optimizer, state: TrainerState,
    train_config: dict[str, Any], release: CheckpointConfig, keep: int, *, extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``checkpoints/step-XXXXXXX`` (temp folder + rename), point ``latest`` at it, prune old ones.

    ``extra(folder)`` writes further files (e.g. a temporal head) into the temp folder before the rename.
    """
    root = out_dir / "checkpoints"
    name = f"step-{state.step:07d}"
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_checkpoint(model, tmp, release)
    opt_bytes, opt_meta = optimizer_to_files(optimizer)
    atomic_write_bytes(tmp / "optimizer.safetensors", opt_bytes)
    atomic_write_json(tmp / "optimizer.json", opt_meta)
    capture_rng(state)
    atomic_write_json(tmp / "trainer_state.json", state.to_json())
    atomic_write_json(tmp / "train_config.json", train_config)
    if extra is not None:
        extra(tmp)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_bytes(root / LATEST, (name + "\n").encode())
    finished = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in finished[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The folder the ``latest`` pointer names, or None when the run has none."""
    pointer = out_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = out_dir / "checkpoints" / pointer.read_text().strip()
    if not (folder / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{pointer} names {folder.name}, which is missing or incomplete")
    return folder


def load_training_checkpoint(folder: Path, model: AttentionMapModel, optimizer: torch.optim.Optimizer) -> TrainerState:
    """Restore model, optimiser and RNG state from a training checkpoint folder; returns its state."""
    load_strict(model, load_file(str(folder / "model.safetensors")), str(folder / "model.safetensors"))
    optimizer_from_files(optimizer, load_file(str(folder / "optimizer.safetensors")), json.loads((folder / "optimizer.json").read_text()))
    state = TrainerState.from_json(json.loads((folder / "trainer_state.json").read_text()))
    restore_rng(state)
    return state
