"""The demo's inputs: a real package photo and self-blended fakes that differ only inside their masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfake_attention.data.media import read_image
from deepfake_attention.demo import prepare_inputs


def test_demo_fakes_change_only_masked_pixels(tmp_path: Path) -> None:
    paths = prepare_inputs(tmp_path / "inputs", fakes=2)
    assert [p.name for p in paths] == ["real_grace_hopper.jpg", "fake_grace_hopper_sbi0.png", "fake_grace_hopper_sbi1.png"]
    real = read_image(paths[0]).astype(int)
    for path in paths[1:]:
        fake = read_image(path).astype(int)
        mask = read_image(tmp_path / f"mask_{path.stem}.png")[..., 0] / 255.0
        changed = np.abs(fake - real).max(axis=2) > 0
        assert changed.sum() > 2000  # a visible forgery
        assert not (changed & (mask == 0)).any()  # and nothing outside its mask
    assert not np.array_equal(read_image(paths[1]), read_image(paths[2]))
