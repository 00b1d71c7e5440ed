"""Fingerprint autoencoders on disk: ``<name>.safetensors`` (weights) beside ``<name>.json``
(constructor arguments, seed, training record, held-out PSNR, weights' SHA-256)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ...files import atomic_write_json, file_sha256
from .nets import FingerprintAutoencoder


def decoder_name(upsampler: str, seed: int) -> str:
    """``transposed-s0``: the file stem of one decoder."""
    return f"{upsampler}-s{seed}"


def decoder_kind(name: str) -> str:
    """``bilinear`` for the decoder ``bilinear-s1``: its up-sampling kind."""
    return name.rsplit("-s", 1)[0]


def save_decoder(model: FingerprintAutoencoder, folder: str | Path, name: str, record: dict[str, Any]) -> Path:
    """Write ``name.safetensors`` and ``name.json`` into ``folder``; returns the weights' path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    tmp = weights.with_suffix(".safetensors.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(weights)
    atomic_write_json(folder / f"{name}.json", {"name": name, "config": model.get_config(), "weights_sha256": file_sha256(weights), **record})
    return weights


def read_record(folder: str | Path, name: str) -> dict[str, Any]:
    """The JSON record of decoder ``name`` in ``folder``."""
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fingerprint decoder {name!r} in {folder} ({path.name} missing)")
    return json.loads(path.read_text())


def load_decoder(folder: str | Path, name: str) -> FingerprintAutoencoder:
    """Decoder ``name`` of ``folder``, in eval mode: the weights' hash checked, every tensor loaded strictly."""
    record = read_record(folder, name)
    weights = Path(folder) / f"{name}.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing")
    if file_sha256(weights) != record["weights_sha256"]:
        raise ValueError(f"{weights} does not match the SHA-256 in {name}.json")
    model = FingerprintAutoencoder(**record["config"])
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()


def list_decoders(folder: str | Path) -> list[str]:
    """The decoder names stored in ``folder`` (sorted)."""
    folder = Path(folder)
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").is_file()) if folder.is_dir() else []
