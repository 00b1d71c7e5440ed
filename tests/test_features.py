"""Features for other components: values equal the model's eval outputs; the file round-trips without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_attention import AttentionMapModel, CheckpointConfig, Detector, Preprocess, save_checkpoint
from deepfake_attention.interop.features import SCHEMA, extract_features, face_features, load_features, save_features, write_features

from .conftest import make_checkpoint, random_rgb, write_image
from .videos import make_video


def _inputs(root: Path) -> Path:
    write_image(root / "a.png", random_rgb(48, 40, seed=1))
    write_image(root / "sub" / "b.png", random_rgb(30, 50, seed=2))
    (root / "broken.jpg").write_bytes(b"not an image")
    make_video(root / "clip.mp4", count=10, width=64, height=48, bits=6)
    return root


def test_features_are_the_models_eval_outputs_and_round_trip(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt", size=32)
    config = json.loads((ckpt / "config.json").read_text())
    config["temperature"] = 2.0
    (ckpt / "config.json").write_text(json.dumps(config))
    detector = Detector.load(ckpt, device="cpu")
    fs = extract_features([_inputs(tmp_path / "in")], model=detector, batch_size=3, frames_per_video=2, progress=False)
    assert fs.paths.tolist() == [str(tmp_path / "in" / n) for n in ("a.png", "broken.jpg", "clip.mp4", "sub/b.png")]
    assert fs.status.tolist() == ["ok", "error", "ok", "ok"] and fs.kinds.tolist() == ["image", "image", "video", "image"]
    assert "not a recognised image format" in fs.errors[1] and fs.errors[0] == ""
    assert len(fs) == 4 and fs.input_index.tolist() == [0, 2, 2, 3] and fs.frame.tolist() == [-1, 0, 1, -1]
    assert np.isnan(fs.time_s[[0, 3]]).all() and (fs.time_s[1:3] > 0).all() and np.isnan(fs.det_score).all()
    assert fs.box[0].tolist() == [0, 0, 40, 48] and fs.box[3].tolist() == [0, 0, 50, 30] and fs.box[1].tolist() == [0, 0, 64, 48]
    assert fs.features.shape == (4, 32) and fs.features.dtype == np.float32 and fs.attention.shape == (4, 32, 32)
    # independent reference: the model in eval mode on the same crop (dropout off -> ReLU output, deterministic)
    model = detector.model
    _, batch = detector.prepare([random_rgb(48, 40, seed=1)])
    with torch.no_grad():
        pooled = model.forward_features(batch)["pooled"]
        expected = torch.relu(model.fusion[0](pooled))
        logits = model.classifier(expected)
    np.testing.assert_allclose(fs.features[0], expected[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fs.logits[0], logits[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fs.prob_fake[0], torch.softmax(logits[0] / 2.0, 0)[1].item(), rtol=1e-5)
    assert model.training is False
    # the file: npz without pickles plus a JSON description
    path = save_features(fs, tmp_path / "out" / "faces")
    assert path.name == "faces.npz"
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(fs.arrays()) and all(data[k].dtype != object for k in data.files)
    meta = json.loads((tmp_path / "out" / "faces.npz.json").read_text())
    assert meta["schema"] == SCHEMA and meta["counts"] == {"faces": 4, "inputs": 4, "ok": 3, "no_face": 0, "error": 1}
    assert meta["arrays"]["features"] == {"dtype": "float32", "shape": [4, 32], "meaning": meta["arrays"]["features"]["meaning"]}
    assert meta["model"]["temperature"] == 2.0 and meta["model"]["sha256"] == detector.model_sha256
    back = load_features(path)
    for name, value in fs.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), value)
    assert back.meta == meta


def test_no_face_multiscale_and_errors(tmp_path: Path) -> None:
    from skimage import data

    torch.manual_seed(0)
    model = AttentionMapModel(feature_dim=8, attention_scales=(1, 2))
    ckpt = tmp_path / "ckpt"
    save_checkpoint(model, ckpt, CheckpointConfig(model=model.get_config(), preprocess=Preprocess(size=32, detector="haar")))
    write_image(tmp_path / "in" / "face.png", data.astronaut())
    write_image(tmp_path / "in" / "noise.png", random_rgb(64, 64))
    fs = extract_features([tmp_path / "in"], model=ckpt, device="cpu", progress=False)
    assert fs.status.tolist() == ["ok", "no_face"] and len(fs) == 1
    assert fs.attention_scales.shape == (1, 2, 32, 32) and np.isfinite(fs.det_score[0])
    x0, y0, x1, y1 = fs.box[0]
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # the astronaut's face, in input pixels
    assert fs.crop_box[0, 2] - fs.crop_box[0, 0] == fs.crop_box[0, 3] - fs.crop_box[0, 1]
    empty = extract_features([tmp_path / "in" / "noise.png"], model=ckpt, device="cpu", progress=False)
    assert len(empty) == 0 and empty.features.shape == (0, 8) and empty.attention.shape == (0, 32, 32) and empty.box.shape == (0, 4)
    again, path = write_features([tmp_path / "in" / "noise.png"], tmp_path / "empty", model=ckpt, device="cpu", progress=False)
    assert path == tmp_path / "empty.npz" and len(load_features(path)) == 0 and again.status.tolist() == ["no_face"]
    with pytest.raises(ValueError, match="no inputs found"):
        (tmp_path / "empty-folder").mkdir()
        extract_features([tmp_path / "empty-folder"], model=ckpt, progress=False)
    with pytest.raises(ValueError, match="no crops given"):
        face_features(Detector.load(ckpt, device="cpu"), [])
    (tmp_path / "bad.npz.json").write_text(json.dumps({"schema": "other/1"}))
    np.savez(tmp_path / "bad.npz", x=np.zeros(1))
    with pytest.raises(ValueError, match="this package reads"):
        load_features(tmp_path / "bad.npz")
