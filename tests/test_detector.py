"""Detector options: mixed precision keeps Grad-CAM++ in fp32 and scores close to full precision; flip averaging
scores a crop with its mirror."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_attention import Detector, save_checkpoint
from deepfake_attention.cli import main
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.evaluation.calibrate import score_rows
from deepfake_attention.interop.features import face_features
from deepfake_attention.metrics.calibration import apply_temperature, fit_temperature
from deepfake_attention.metrics.classification import threshold_at_fpr

from .conftest import make_checkpoint, random_rgb, write_image


def test_bf16_autocast_on_cpu_matches_fp32(tiny_checkpoint: Path) -> None:
    crops = [random_rgb(40, 40, seed=k) for k in range(3)]
    exact = Detector.load(tiny_checkpoint, device="cpu", amp="off").predict(crops)
    mixed = Detector.load(tiny_checkpoint, device="cpu", amp="bf16").predict(crops)
    for a, b in zip(exact, mixed):
        assert b.gradcampp.dtype == np.float32 and np.isfinite(b.gradcampp).all()
        assert abs(a.prob_fake - b.prob_fake) < 0.02
        assert np.corrcoef(a.attention.ravel(), b.attention.ravel())[0, 1] > 0.99


def test_amp_auto_is_off_on_cpu_and_bad_modes_are_refused(tiny_checkpoint: Path) -> None:
    assert Detector.load(tiny_checkpoint, device="cpu").amp_dtype is None
    with pytest.raises(ValueError, match="amp must be one of"):
        Detector.load(tiny_checkpoint, device="cpu", amp="fp8")


def _mirrored(crops: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]


def _min_max(image: np.ndarray) -> np.ndarray:
    return (image - image.min()) / (image.max() - image.min())


def _sharpened(detector: Detector) -> Detector:
    """The untrained model's logits scaled up, so that a crop and its mirror score visibly apart."""
    with torch.no_grad():
        detector.model.fusion[0].weight.mul_(10.0)
        detector.model.classifier[0].weight.mul_(30.0)
    return detector


def test_flip_average_scores_each_crop_with_its_mirror(tmp_path: Path) -> None:
    plain = _sharpened(Detector.load(make_checkpoint(tmp_path / "plain"), device="cpu"))
    flipping = _sharpened(Detector.load(make_checkpoint(tmp_path / "flip", flip_average=True), device="cpu"))
    assert flipping.config.preprocess.flip_average and not plain.config.preprocess.flip_average
    crops = [random_rgb(32, 32, seed=k) for k in range(3)]  # at the model's size: no resize between a crop and its mirror
    straight, mirrored, averaged = plain.predict(crops), plain.predict(_mirrored(crops)), flipping.predict(crops)
    for s, m, a in zip(straight, mirrored, averaged):
        assert abs(s.logits[1] - m.logits[1]) > 1e-4  # the mirror is scored differently: the mean is not trivially one of them
        np.testing.assert_allclose(a.logits, (np.asarray(s.logits) + np.asarray(m.logits)) / 2, atol=1e-5)
        np.testing.assert_allclose(a.attention, (s.attention + m.attention[:, ::-1]) / 2, atol=1e-5)
        np.testing.assert_allclose(a.gradcampp, _min_max(s.gradcampp + m.gradcampp[:, ::-1]), atol=1e-4)
        np.testing.assert_allclose(a.features, s.features, atol=1e-5)
        assert a.crop is not None and np.array_equal(a.crop, s.crop)
    np.testing.assert_allclose([p.prob_fake for p in flipping.predict(_mirrored(crops))], [p.prob_fake for p in averaged], atol=1e-6)
    scores = [p.logits for p in flipping.predict(crops, cam=False)]
    np.testing.assert_allclose(scores, [p.logits for p in averaged], atol=1e-5)


def test_face_features_follow_flip_averaging(tmp_path: Path) -> None:
    flipping = _sharpened(Detector.load(make_checkpoint(tmp_path / "flip", flip_average=True), device="cpu"))
    crops = [random_rgb(32, 32, seed=k) for k in range(2)]
    predicted = flipping.predict(crops, cam=False)
    features = face_features(flipping, crops)
    np.testing.assert_allclose(features["logits"], [p.logits for p in predicted], atol=1e-5)
    np.testing.assert_allclose(features["prob_fake"], [p.prob_fake for p in predicted], atol=1e-6)
    np.testing.assert_allclose(features["features"], [p.features for p in predicted], atol=1e-5)


def test_calibrate_turns_flip_averaging_on_and_fits_the_mirrored_scores(tmp_path: Path) -> None:
    sharp = _sharpened(Detector.load(make_checkpoint(tmp_path / "plain"), device="cpu"))
    checkpoint = tmp_path / "ckpt"
    save_checkpoint(sharp.model, checkpoint, sharp.config)
    lines = ["path,label"]
    for k in range(16):
        lines.append(f"{write_image(tmp_path / 'crops' / f'{k}.png', random_rgb(32, 32, seed=k)).name},{'fake' if k % 2 else 'real'}")
    manifest = tmp_path / "crops" / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    fits = {}
    for flip in ("on", "off"):
        assert main(["calibrate", str(checkpoint), str(manifest), "--flip-average", flip, "--device", "cpu"]) == 0
        detector = Detector.load(checkpoint, device="cpu")
        assert detector.config.preprocess.flip_average is (flip == "on")
        logits, labels = score_rows(detector, read_manifest(manifest))  # an independent fit of the scores as this setting makes them
        temperature = fit_temperature(logits, labels, bounds=(0.5, 5.0)).temperature
        threshold = threshold_at_fpr(labels, apply_temperature(logits, temperature), 0.05).threshold
        assert detector.config.temperature == pytest.approx(temperature, rel=1e-4)
        assert detector.config.threshold == pytest.approx(threshold, rel=1e-4)
        fits[flip] = threshold
    assert abs(fits["on"] - fits["off"]) > 1e-3  # the mirror changed what was fitted
