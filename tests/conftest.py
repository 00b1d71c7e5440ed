"""Shared fixtures: tiny models and checkpoints, image files, the shared real-video folder, bench scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_attention import AttentionMapModel, CheckpointConfig, Preprocess, save_checkpoint

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_VIDEOS = SHARED_DATA / "real-videos"
BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """bench/ is a folder of scripts: load ``bench/<name>.py`` from its file (its helpers come from bench/ beside it)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def seed_model() -> AttentionMapModel:
    """The seed's model, untrained, in eval mode."""
    torch.manual_seed(0)
    return AttentionMapModel().eval()


def make_checkpoint(directory: Path, *, trunk: str | None = None, size: int = 32, trained: bool = True, threshold: float = 0.5, seed: int = 0,
                    detector: str = "none", flip_average: bool = False) -> Path:
    """A small checkpoint for fast tests (seed model on ``size`` x ``size`` pixels by default;
    ``detector="none"``: the whole image is the face)."""
    torch.manual_seed(seed)
    model = AttentionMapModel(trunk=trunk, feature_dim=32)
    config = CheckpointConfig(model=model.get_config(), preprocess=Preprocess(size=size, detector=detector, flip_average=flip_average),
                              trained=trained, threshold=threshold)
    save_checkpoint(model, directory, config)
    return directory


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "ckpt")


def random_rgb(height: int = 48, width: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_image(path: Path, array: np.ndarray | None = None, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_rgb() if array is None else array).save(path, **save_kwargs)
    return path
