"""``deepfake-attention demo``: analyze bundled sample input with the shipped model.

The input is a real photo that ships inside matplotlib (Grace Hopper, public domain) and
self-blended fakes of it made here: its face is detected, self-blended with an exact mask
(data.synth.self_blend) and pasted back into the photo, so the fakes are whole photos.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from .analysis import RunSummary, analyze
from .data.faces import detect_faces
from .data.media import read_image
from .data.synth import family_config, self_blend

DEMO_SEED = 2024


def sample_photo() -> Path:
    """A real portrait that ships inside matplotlib (Grace Hopper, public domain)."""
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def blended_photos(photo: np.ndarray, count: int, *, seed: int = DEMO_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` copies of ``photo`` whose first face is self-blended, with each fake's mask in photo pixels."""
    faces = detect_faces(photo, "haar")
    if not faces:
        raise ValueError("no face found in the demo photo")
    face = faces[0]
    x0, y0, x1, y1 = face.crop_box
    box = (face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0)
    config = family_config("sbi", jpeg_prob=0.0, downscale_prob=0.0, blend_ratios=(1.0,))
    out = []
    for index in range(count):
        sample = self_blend(face.crop, seed, index, face_box=box, config=config)
        # keep the photo untouched where M = 0 (SBI may have jittered the whole target copy)
        weight = sample.mask[..., None]
        fake, mask = photo.copy(), np.zeros(photo.shape[:2], np.float32)
        fake[y0:y1, x0:x1] = np.rint(weight * sample.image + (1.0 - weight) * face.crop).astype(np.uint8)
        mask[y0:y1, x0:x1] = sample.mask
        out.append((fake, mask))
    return out


def prepare_inputs(folder: str | Path, *, fakes: int = 2) -> list[Path]:
    """Put the demo's inputs in ``folder``: the real photo and ``fakes`` self-blended versions of it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    real = folder / "real_grace_hopper.jpg"
    shutil.copyfile(sample_photo(), real)
    paths = [real]
    for k, (fake, mask) in enumerate(blended_photos(read_image(real), fakes)):
        path = folder / f"fake_grace_hopper_sbi{k}.png"
        Image.fromarray(fake).save(path)
        Image.fromarray(np.rint(mask * 255).astype(np.uint8)).save(folder.parent / f"mask_{path.stem}.png")
        paths.append(path)
    return paths


def run_demo(out_dir: str | Path, *, model: str | Path | None = None, device: str = "auto") -> RunSummary:
    """Prepare the sample inputs under ``out_dir/inputs`` and analyze them into ``out_dir``."""
    out_dir = Path(out_dir)
    prepare_inputs(out_dir / "inputs")
    return analyze([out_dir / "inputs"], out_dir, model=model, device=device, save_maps="all", command="deepfake-attention demo")
