"""Release checkpoints: a directory with ``config.json`` and ``model.safetensors``.

Loading is strict (missing, unexpected or mis-shaped weights are errors that name the key) and
never unpickles anything. ``config.json`` carries everything needed to use the weights: the
model config, preprocessing (size, mean, std, crop scale, face detector), class names, the
Grad-CAM target layer, calibration temperature, decision threshold, whether the model was
trained at all, the package version and the weights' SHA-256.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from .data.transforms import CLASS_NAMES, Preprocess, PreprocessError
from .files import atomic_write_bytes, atomic_write_json, file_sha256
from .model import AttentionMapModel
from .model.temporal import TemporalAttentionPooling
from .version import __version__

SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEMPORAL_FILE = "temporal_head.safetensors"
"""The optional temporal head of a video checkpoint, described in ``config.json``'s ``info``."""
INFO_KEY = "temporal_head"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as it is; the message says what is wrong."""


@dataclass(frozen=True)
class CheckpointConfig:
    """The contents of ``config.json`` (DESIGN.md's release checkpoint contract)."""

    model: dict[str, Any]
    preprocess: Preprocess = field(default_factory=Preprocess)
    class_names: tuple[str, ...] = CLASS_NAMES
    target_layer: str = "feature_extractor.8"
    temperature: float = 1.0
    threshold: float = 0.5
    trained: bool = False
    package_version: str = ""
    weights_sha256: str = ""
    schema_version: int = SCHEMA_VERSION
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance: training recipe, data, measured metrics."""

    def __post_init__(self) -> None:
        if tuple(self.class_names) != CLASS_NAMES:
            raise CheckpointError(f"class_names must be {list(CLASS_NAMES)} (fake = index 1), got {list(self.class_names)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise CheckpointError(f"threshold must be in [0, 1], got {self.threshold}")
        if not self.temperature > 0:
            raise CheckpointError(f"temperature must be > 0, got {self.temperature}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["class_names"] = list(self.class_names)
        data["preprocess"]["mean"] = list(self.preprocess.mean)
        data["preprocess"]["std"] = list(self.preprocess.std)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckpointConfig":
        data = dict(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CheckpointError(f"config.json has schema_version {version!r}; this package reads version {SCHEMA_VERSION}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"config.json has unknown keys {unknown}")
        if "model" not in data:
            raise CheckpointError("config.json has no 'model' section")
        pre = dict(data.get("preprocess", {}))
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(pre[key])
        try:
            data["preprocess"] = Preprocess(**pre)
        except (TypeError, PreprocessError) as error:
            raise CheckpointError(f"config.json preprocess section is invalid: {error}") from None
        data["class_names"] = tuple(data.get("class_names", CLASS_NAMES))
        return cls(**data)


def state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the model's tensors, as safetensors wants them."""
    return {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}


def save_checkpoint(model: AttentionMapModel, directory: str | Path, config: CheckpointConfig) -> CheckpointConfig:
    """Write ``model.safetensors`` then ``config.json`` (with the weights' SHA-256) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state_dict_for_save(model), metadata={"format": "pt"}))
    config = dataclasses.replace(
        config,
        model=model.get_config(),
        package_version=__version__,
        weights_sha256=file_sha256(directory / WEIGHTS_FILE),
    )
    atomic_write_json(directory / CONFIG_FILE, config.to_json())
    return config


def read_config(directory: str | Path) -> CheckpointConfig:
    """Read and validate ``config.json`` of a checkpoint directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG_FILE} is missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    return CheckpointConfig.from_json(data)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; any missing, unexpected or mis-shaped key is an error naming it."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}" + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:5]))
    if problems:
        raise CheckpointError(f"{source} does not match the model its config describes: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(directory: str | Path, *, device: str | torch.device = "cpu") -> tuple[AttentionMapModel, CheckpointConfig]:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` strictly, in eval mode."""
    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}")
    digest = file_sha256(weights)
    if config.weights_sha256 and digest != config.weights_sha256:
        raise CheckpointError(f"{weights} has SHA-256 {digest[:12]}..., but config.json records {config.weights_sha256[:12]}...: the files do not belong together")
    try:
        model = AttentionMapModel.from_config(config.model)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"config.json model section is invalid: {error}") from None
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises its own error types; report them as ours
        raise CheckpointError(f"{weights} is not a readable safetensors file: {error}") from None
    load_strict(model, state, str(weights))
    if not config.weights_sha256:
        config = dataclasses.replace(config, weights_sha256=digest)
    return model.to(device).eval(), config


# -- the optional temporal head of a video checkpoint ------------------------------------------
def save_temporal_head(head: TemporalAttentionPooling, directory: str | Path) -> dict[str, Any]:
    """Write ``temporal_head.safetensors`` into a release checkpoint and describe it in its ``config.json``
    (``info["temporal_head"]``: file, config, sha256). Returns that description."""
    directory = Path(directory)
    config = read_config(directory)
    atomic_write_bytes(directory / TEMPORAL_FILE, save(state_dict_for_save(head), metadata={"format": "pt"}))
    entry = {"file": TEMPORAL_FILE, "config": head.get_config(), "sha256": file_sha256(directory / TEMPORAL_FILE),
             "note": "temporal attention pooling over a face track's per-frame features; off by default in analyze"}
    updated = dataclasses.replace(config, info={**config.info, INFO_KEY: entry})
    atomic_write_json(directory / CONFIG_FILE, updated.to_json())
    return entry


def load_temporal_head(directory: str | Path, *, feature_dim: int | None = None) -> TemporalAttentionPooling | None:
    """The checkpoint's temporal head in eval mode, or None when its ``config.json`` describes none.

    Raises :class:`~deepfake_attention.checkpoint.CheckpointError` when the described file is
    missing, does not match its SHA-256, does not load strictly, or (``feature_dim``) does not
    fit the frame model's features.
    """
    directory = Path(directory)
    entry = read_config(directory).info.get(INFO_KEY)
    if entry is None:
        return None
    path = directory / entry.get("file", TEMPORAL_FILE)
    if not path.is_file():
        raise CheckpointError(f"config.json describes a temporal head but {path} is missing")
    digest = file_sha256(path)
    if entry.get("sha256") and digest != entry["sha256"]:
        raise CheckpointError(f"{path} has SHA-256 {digest[:12]}..., but config.json records {entry['sha256'][:12]}...")
    try:
        head = TemporalAttentionPooling.from_config(entry["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"config.json temporal_head section is invalid: {error}") from None
    if feature_dim is not None and head.feature_dim != feature_dim:
        raise CheckpointError(f"the temporal head takes {head.feature_dim}-d features but the frame model gives {feature_dim}-d")
    load_strict(head, load_file(str(path)), str(path))
    return head.eval()
