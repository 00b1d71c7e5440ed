"""Checkpoints: safetensors + JSON, strict loading with clear errors, the shipped placeholder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepfake_attention import AttentionMapModel, CheckpointError, Detector, load_checkpoint
from deepfake_attention.checkpoint import read_config
from deepfake_attention.detector import DEFAULT_MODEL_DIR
from deepfake_attention.model.backbones import TRUNKS

from .conftest import make_checkpoint


def test_round_trip_is_exact(tmp_path: Path) -> None:
    directory = make_checkpoint(tmp_path / "c", trunk="mobilenet_v2_s8", size=64)
    model, config = load_checkpoint(directory)
    stored = load_file(str(directory / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())
    assert config.model["trunk"] == "mobilenet_v2_s8" and config.preprocess.size == 64
    assert not model.training
    data = json.loads((directory / "config.json").read_text())
    for key in ("schema_version", "model", "preprocess", "class_names", "target_layer", "temperature", "threshold", "trained", "package_version", "weights_sha256"):
        assert key in data
    assert data["class_names"] == ["real", "fake"]
    assert set(data["preprocess"]) >= {"size", "mean", "std", "crop_scale", "detector"}


def test_missing_unexpected_and_misshaped_weights_are_named(tmp_path: Path) -> None:
    directory = make_checkpoint(tmp_path / "c")
    state = load_file(str(directory / "model.safetensors"))
    config = json.loads((directory / "config.json").read_text())
    config["weights_sha256"] = ""

    def rewrite(new_state, new_config=config):
        save_file(new_state, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(new_config))

    rewrite({k: v for k, v in state.items() if k != "classifier.0.bias"})
    with pytest.raises(CheckpointError, match=r"missing keys \['classifier.0.bias'\]"):
        load_checkpoint(directory)
    rewrite({**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra.weight'\]"):
        load_checkpoint(directory)
    rewrite(state, {**config, "model": {**config["model"], "feature_dim": 64}})
    with pytest.raises(CheckpointError, match="shape mismatch fusion.0.weight"):
        load_checkpoint(directory)


def test_mismatched_hash_and_bad_files(tmp_path: Path) -> None:
    directory = make_checkpoint(tmp_path / "c")
    other = make_checkpoint(tmp_path / "d", seed=1)
    (directory / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_checkpoint(directory)
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(tmp_path / "e")
    (tmp_path / "e" / "config.json").write_text(json.dumps({"schema_version": 99, "model": {}}))
    with pytest.raises(CheckpointError, match="schema_version 99"):
        read_config(tmp_path / "e")


def test_a_pickle_is_never_loaded(tmp_path: Path) -> None:
    """A pickled file in place of the weights is refused by the safetensors reader, not executed."""
    directory = make_checkpoint(tmp_path / "c")
    torch.save(AttentionMapModel(feature_dim=32).state_dict(), directory / "model.safetensors")
    config = json.loads((directory / "config.json").read_text())
    config["weights_sha256"] = ""
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(directory)


def test_shipped_model_loads() -> None:
    detector = Detector.load(device="cpu")
    assert detector.config.model["trunk"] in TRUNKS
    assert detector.model_sha256 == read_config(DEFAULT_MODEL_DIR).weights_sha256
    assert 0.0 <= detector.threshold <= 1.0 and detector.config.temperature > 0
