"""``deepfake-attention demo``: analyze bundled sample input with the shipped model."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

from .analysis import RunSummary, analyze


def sample_photo() -> Path:
    """A real portrait that ships inside matplotlib (Grace Hopper, public domain)."""
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def prepare_inputs(folder: str | Path) -> list[Path]:
    """Put the demo's inputs in ``folder``: the real sample photo."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "real_grace_hopper.jpg"
    shutil.copyfile(sample_photo(), target)
    return [target]


def run_demo(out_dir: str | Path, *, model: str | Path | None = None, device: str = "auto") -> RunSummary:
    """Prepare the sample inputs under ``out_dir/inputs`` and analyze them into ``out_dir``."""
    out_dir = Path(out_dir)
    inputs = prepare_inputs(out_dir / "inputs")
    return analyze([out_dir / "inputs"] if inputs else [], out_dir, model=model, device=device, command="deepfake-attention demo")
