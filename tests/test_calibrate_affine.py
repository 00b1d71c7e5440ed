"""``calibrate --fit affine``: the offset is folded into the classifier's bias, so the checkpoint's
``softmax(logits / T)[fake]`` is the affine fit's P(fake), and nothing else about the model moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepfake_attention import Detector, save_checkpoint
from deepfake_attention.checkpoint import read_config
from deepfake_attention.cli import main
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.evaluation.calibrate import score_rows
from deepfake_attention.metrics import apply_affine, fit_affine
from deepfake_attention.metrics.classification import threshold_at_fpr

from .conftest import make_checkpoint, random_rgb, write_image


def _leaning_checkpoint(tmp_path: Path) -> Path:
    """A tiny checkpoint with spread-out logits that leans towards fake by a constant."""
    detector = Detector.load(make_checkpoint(tmp_path / "plain"), device="cpu")
    with torch.no_grad():
        detector.model.fusion[0].weight.mul_(10.0)
        detector.model.classifier[0].weight.mul_(30.0)
        detector.model.classifier[0].bias[1] += 3.0
    save_checkpoint(detector.model, tmp_path / "ckpt", detector.config)
    return tmp_path / "ckpt"


def _manifest(tmp_path: Path, n: int = 24) -> Path:
    lines = ["path,label"]
    for k in range(n):
        lines.append(f"{write_image(tmp_path / 'crops' / f'{k}.png', random_rgb(32, 32, seed=k)).name},{'fake' if k % 3 == 0 else 'real'}")
    manifest = tmp_path / "crops" / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_affine_calibration_is_folded_into_the_weights(tmp_path: Path) -> None:
    checkpoint, manifest = _leaning_checkpoint(tmp_path), _manifest(tmp_path)
    before = Detector.load(checkpoint, device="cpu")
    crops = [random_rgb(32, 32, seed=k) for k in range(3)]
    maps_before = [p.gradcampp for p in before.predict(crops)]
    logits, labels = score_rows(before, read_manifest(manifest))
    expected = fit_affine(logits, labels, bounds=(0.5, 5.0))  # an independent fit of the same scores
    state_before = load_file(str(checkpoint / "model.safetensors"))

    assert main(["calibrate", str(checkpoint), str(manifest), "--fit", "affine", "--device", "cpu"]) == 0
    after = Detector.load(checkpoint, device="cpu")  # loads strictly: the new weights match the recorded SHA-256
    assert after.config.temperature == pytest.approx(expected.temperature, rel=1e-4)
    assert after.config.info["calibration"]["offset"] == pytest.approx(expected.offset, abs=1e-4) and abs(expected.offset) > 0.1
    assert after.config.info["calibration"]["fit"] == "affine"
    new_logits, _ = score_rows(after, read_manifest(manifest))
    probs = apply_affine(logits, expected.temperature, expected.offset)
    plain = np.array([p.logits for p in before.predict(crops, cam=False)])
    np.testing.assert_allclose([p.prob_fake for p in after.predict(crops, cam=False)], apply_affine(plain, expected.temperature, expected.offset), atol=1e-5)
    np.testing.assert_allclose(apply_affine(new_logits, after.config.temperature, 0.0), probs, atol=1e-5)
    assert after.config.threshold == pytest.approx(threshold_at_fpr(labels, probs, 0.05).threshold, rel=1e-4)
    state_after = load_file(str(checkpoint / "model.safetensors"))
    changed = [k for k in state_before if not torch.equal(state_before[k], state_after[k])]
    assert changed == ["classifier.0.bias"]
    assert float(state_after["classifier.0.bias"][0]) == float(state_before["classifier.0.bias"][0])
    for old, new in zip(maps_before, [p.gradcampp for p in after.predict(crops)]):
        np.testing.assert_allclose(new, old, atol=1e-5)  # a constant has no gradient: the explanation is the same


def test_temperature_fit_leaves_the_weights_alone(tmp_path: Path) -> None:
    checkpoint, manifest = _leaning_checkpoint(tmp_path), _manifest(tmp_path)
    sha = read_config(checkpoint).weights_sha256
    assert main(["calibrate", str(checkpoint), str(manifest), "--device", "cpu"]) == 0
    config = read_config(checkpoint)
    assert config.weights_sha256 == sha and config.info["calibration"]["offset"] == 0.0 and config.info["calibration"]["fit"] == "temperature"
