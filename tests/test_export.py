"""Export: ONNX (onnxruntime) and torch.export programs match the PyTorch model to 1e-4 on logits and maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_attention import AttentionMapModel, CheckpointConfig, Detector, Preprocess, attention_map, save_checkpoint
from deepfake_attention.interop.export import FORMATS, METADATA_KEY, SUFFIXES, export, load_exported

TOLERANCE = 1e-4


def _checkpoint(directory: Path, trunk: str | None = "mobilenet_v2_s8", size: int = 64, flip_average: bool = False, **options) -> Path:
    """A model (the trunk model by default) whose logits are a few units (so 1e-4 is a real test) and whose BatchNorm statistics are not the identity."""
    torch.manual_seed(0)
    model = AttentionMapModel(trunk=trunk, feature_dim=32, **options)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.fusion[0].weight.mul_(10.0)
        model.classifier[0].weight.mul_(30.0)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    config = CheckpointConfig(model=model.get_config(), preprocess=Preprocess(size=size, flip_average=flip_average), temperature=1.5, threshold=0.4, trained=True)
    save_checkpoint(model, directory, config)
    return directory


@pytest.fixture(scope="module")
def trunk_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("export") / "ckpt")


@pytest.mark.parametrize("fmt", FORMATS)
def test_parity_at_two_batch_sizes_and_two_input_sizes(trunk_checkpoint: Path, tmp_path: Path, fmt: str) -> None:
    result = export(trunk_checkpoint, tmp_path / "model", fmt)
    assert result.path == tmp_path / f"model{SUFFIXES[fmt]}" and result.path.is_file()
    assert result.dynamic == {"batch": True, "height": True, "width": True, "min_side": 16, "max_side": 4096}
    # export's own check: batch 1 and 3 at the checkpoint's 64 px and at 96 px
    assert [p["shape"] for p in result.parity] == [[1, 3, 64, 64], [3, 3, 64, 64], [1, 3, 96, 96], [3, 3, 96, 96]]
    assert all(p["logits_max_abs"] <= TOLERANCE and p["attention_max_abs"] <= TOLERANCE for p in result.parity)
    # an independent check against the loaded detector's model and its attention_map, incl. a non-square input
    detector = Detector.load(trunk_checkpoint, device="cpu")
    run = load_exported(result.path)
    for batch, (height, width) in ((1, (96, 96)), (3, (72, 104))):
        x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height + width))
        x += torch.linspace(-1.0, 1.0, batch).view(-1, 1, 1, 1)  # samples that differ as a whole, not only in noise
        with torch.no_grad():
            out = detector.model(x)
        logits, attention = run(x)
        assert logits.shape == (batch, 2) and attention.shape == (batch, 1, height, width)
        assert float(out["output"].abs().max()) > 1.0  # the comparison is not between near-zero numbers
        assert batch == 1 or float(out["output"][:, 1].std()) > 1e-3  # nor between constants
        assert np.abs(logits - out["output"].numpy()).max() <= TOLERANCE
        assert np.abs(attention[:, 0] - attention_map(out["attention_weights"], (height, width)).numpy()).max() <= TOLERANCE
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["format"] == fmt and sidecar["temperature"] == 1.5 and sidecar["threshold"] == 0.4
    assert sidecar["model"]["trunk"] == "mobilenet_v2_s8" and "Grad-CAM++ needs gradients" in sidecar["explanations"]
    assert sidecar["parity"] == result.parity and sidecar["preprocess"]["size"] == 64
    if fmt == "onnx":
        import onnx

        metadata = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
        assert json.loads(metadata[METADATA_KEY])["weights_sha256"] == detector.model_sha256


def test_variant_with_native_maps_and_a_fixed_size(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "ckpt", trunk=None, size=32, channel_attention="se", attention_scales=(1, 2, 4))
    detector = Detector.load(ckpt, device="cpu")
    result = export(detector, tmp_path / "variant.pt2", "exported-program", dynamic_size=False, upsample=False)
    assert result.dynamic["height"] is False and result.dynamic["min_side"] == 32
    assert [p["shape"] for p in result.parity] == [[1, 3, 32, 32], [3, 3, 32, 32]]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = detector.model(x)
    logits, attention = load_exported(result.path)(x)
    assert attention.shape == (2, 1, 32, 32)
    assert np.abs(attention - out["attention_weights"].numpy()).max() <= TOLERANCE
    assert np.abs(logits - out["output"].numpy()).max() <= TOLERANCE
    assert detector.model.training is False and next(detector.model.parameters()).requires_grad


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_flip_averaging_checkpoint_exports_the_mean_of_each_image_and_its_mirror(tmp_path: Path, fmt: str) -> None:
    ckpt = _checkpoint(tmp_path / "ckpt", trunk=None, size=32, flip_average=True)
    detector = Detector.load(ckpt, device="cpu")
    result = export(ckpt, tmp_path / "flip", fmt, dynamic_size=False)
    crops = [np.random.default_rng(k).integers(0, 256, (32, 32, 3), dtype=np.uint8) for k in range(3)]
    predicted = detector.predict(crops)
    logits, attention = load_exported(result.path)(detector.prepare(crops)[1])
    assert np.abs(logits - np.array([p.logits for p in predicted])).max() <= TOLERANCE
    assert np.abs(attention[:, 0] - np.stack([p.attention for p in predicted])).max() <= TOLERANCE
    with torch.no_grad():
        single = detector.model(detector.prepare(crops)[1])["output"].numpy()
    assert np.abs(logits - single).max() > 10 * TOLERANCE  # the mirror changed the scores: the check above is not of one pass
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["preprocess"]["flip_average"] is True and "mirror" in sidecar["outputs"]["logits"]["meaning"]


def test_bad_arguments_are_refused(trunk_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        export(trunk_checkpoint, tmp_path / "m", "torchscript")
    with pytest.raises(TypeError, match="a Detector or a checkpoint folder"):
        export(AttentionMapModel(), tmp_path / "m")
    with pytest.raises(ValueError, match="outside"):
        export(trunk_checkpoint, tmp_path / "m", max_side=32)
    with pytest.raises(ValueError, match="neither .onnx nor .pt2"):
        (tmp_path / "m.bin").write_bytes(b"")
        load_exported(tmp_path / "m.bin")
