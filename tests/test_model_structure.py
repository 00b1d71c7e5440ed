"""The seed's model, exactly: structure layer by layer, outputs, config round trip, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfake_attention import AttentionMapModel


class SeedReference(nn.Module):
    """The seed's code, transcribed literally from the specification, as the reference."""

    def __init__(self, input_channels: int = 3, num_classes: int = 2, feature_dim: int = 512) -> None:
        super().__init__()
        attn_channels = max(1, input_channels // 4)
        self.attention_conv = nn.Sequential(
            nn.Conv2d(input_channels, attn_channels, kernel_size=1), nn.BatchNorm2d(attn_channels), nn.ReLU(),
            nn.Conv2d(attn_channels, 1, kernel_size=1), nn.Sigmoid(),
        )
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(input_channels, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 256, kernel_size=3, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fusion = nn.Sequential(nn.Linear(256, feature_dim), nn.ReLU(), nn.Dropout(0.3))
        self.classifier = nn.Sequential(nn.Linear(feature_dim, num_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        attention_weights = self.attention_conv(x)
        attended_features = x * attention_weights
        features = self.feature_extractor(attended_features).flatten(1)
        features = self.fusion(features)
        output = self.classifier(features)
        return {"output": output, "features": features, "attention_weights": attention_weights, "attended_features": attended_features}


def _layer_signature(module: nn.Module) -> tuple:
    fields = {}
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "num_features", "in_features", "out_features", "p", "output_size", "eps", "momentum"):
        if hasattr(module, name):
            fields[name] = getattr(module, name)
    return type(module), tuple(sorted(fields.items())), tuple((n, tuple(p.shape)) for n, p in module.named_parameters(recurse=False))


@pytest.mark.parametrize("channels", [1, 3, 4, 8])
def test_structure_matches_the_seed_layer_by_layer(channels: int) -> None:
    ours, seed = AttentionMapModel(input_channels=channels), SeedReference(input_channels=channels)
    assert [name for name, _ in ours.named_children()] == ["attention_conv", "feature_extractor", "fusion", "classifier"]
    for block in ("attention_conv", "feature_extractor", "fusion", "classifier"):
        mine, theirs = list(getattr(ours, block)), list(getattr(seed, block))
        assert len(mine) == len(theirs), block
        for a, b in zip(mine, theirs):
            assert _layer_signature(a) == _layer_signature(b), (block, a, b)
    assert list(ours.state_dict()) == list(seed.state_dict())
    assert ours.attention_conv[0].out_channels == max(1, channels // 4)


@pytest.mark.parametrize("train", [True, False])
def test_forward_equals_the_seed_and_has_its_shapes(train: bool) -> None:
    ours, seed = AttentionMapModel(), SeedReference()
    seed.load_state_dict(ours.state_dict())
    ours.train(train), seed.train(train)
    x = torch.randn(3, 3, 20, 24)
    torch.manual_seed(1)
    out = ours(x)
    torch.manual_seed(1)
    ref = seed(x)
    assert set(out) == {"output", "features", "attention_weights", "attended_features"}
    assert out["output"].shape == (3, 2) and out["features"].shape == (3, 512)
    assert out["attention_weights"].shape == (3, 1, 20, 24) and out["attended_features"].shape == (3, 3, 20, 24)
    for key in out:
        torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-6)
    weights = out["attention_weights"].detach()
    assert float(weights.min()) > 0 and float(weights.max()) < 1


def test_config_round_trip_and_knobs() -> None:
    model = AttentionMapModel(input_channels=4, num_classes=3, feature_dim=64, attention_reduction=2, dropout=0.1)
    config = model.get_config()
    assert config["num_classes"] == 3 and config["feature_dim"] == 64 and config["input_channels"] == 4
    assert config["attention_reduction"] == 2 and config["dropout"] == 0.1 and config["trunk"] is None
    assert model.attention_conv[0].out_channels == 2 and model.fusion[2].p == 0.1
    rebuilt = AttentionMapModel.from_config(config)
    assert rebuilt.get_config() == config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    defaults = AttentionMapModel().get_config()
    assert (defaults["attention_reduction"], defaults["dropout"], defaults["feature_dim"]) == (4, 0.3, 512)


def test_bad_config_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="unknown model config keys"):
        AttentionMapModel.from_config({"num_classes": 2, "colour": "red"})
    with pytest.raises(ValueError, match="unknown trunk"):
        AttentionMapModel(trunk="resnet9000")
    with pytest.raises(ValueError, match="dropout"):
        AttentionMapModel(dropout=1.5)
    with pytest.raises(ValueError, match=r"expected a \[B, 3, H, W\]"):
        AttentionMapModel()(torch.randn(1, 1, 8, 8))


def test_trunk_model_runs_the_seed_block_on_a_stride_8_map() -> None:
    model = AttentionMapModel(trunk="mobilenet_v2_s8").eval()
    out = model(torch.randn(2, 3, 224, 224))
    assert out["attention_weights"].shape == (2, 1, 28, 28)
    assert out["attended_features"].shape == (2, 32, 28, 28)
    assert out["output"].shape == (2, 2) and out["features"].shape == (2, 512)
    assert model.get_config()["input_channels"] == 3 and model.get_config()["trunk"] == "mobilenet_v2_s8"
    assert model.attention_conv[0].in_channels == 32 and model.attention_conv[0].out_channels == 8
    assert model.feature_extractor[0].in_channels == 32
    with pytest.raises(ValueError, match="takes 3-channel images"):
        AttentionMapModel(input_channels=1, trunk="mobilenet_v2_s8")


def test_deeper_trunk_cut_runs_the_seed_block_on_a_stride_16_map() -> None:
    from torchvision.models import mobilenet_v2

    model = AttentionMapModel(trunk="mobilenet_v2_s16").eval()
    out = model(torch.randn(1, 3, 224, 224))
    assert out["attention_weights"].shape == (1, 1, 14, 14) and out["attended_features"].shape == (1, 96, 14, 14)
    assert model.feature_extractor[0].in_channels == 96
    # the cut is MobileNetV2's first 14 blocks, so ImageNet weights load into it by name
    assert list(model.trunk.state_dict()) == [k.removeprefix("features.") for k in mobilenet_v2(weights=None).state_dict() if k.startswith("features.") and int(k.split(".")[1]) < 14]



def test_dilated_trunk_is_deeper_at_the_same_stride() -> None:
    from torchvision.models import mobilenet_v2

    model = AttentionMapModel(trunk="mobilenet_v2_d16").eval()
    out = model(torch.randn(1, 3, 112, 112))
    assert out["attention_weights"].shape == (1, 1, 7, 7) and out["attended_features"].shape == (1, 320, 7, 7)
    reference = mobilenet_v2(weights=None).features
    assert list(model.trunk.state_dict()) == [k.removeprefix("features.") for k in mobilenet_v2(weights=None).state_dict() if k.startswith("features.") and int(k.split(".")[1]) < 18]
    # the undone down-sampling: block 14 no longer halves the map, and blocks 14-17 look as far as before
    assert reference[14].conv[1][0].stride == (2, 2) and model.trunk[14].conv[1][0].stride == (1, 1)
    assert all(model.trunk[k].conv[1][0].dilation == (2, 2) for k in range(14, 18))
    assert all(conv.dilation == (1, 1) for conv in model.trunk[:14].modules() if isinstance(conv, torch.nn.Conv2d))

def test_trunk_imagenet_weights_from_a_local_file(tmp_path, monkeypatch) -> None:
    from torchvision.models import mobilenet_v2

    from deepfake_attention.model import backbones

    torch.manual_seed(3)
    reference = mobilenet_v2(weights=None)
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    digest = backbones.file_sha256(path)
    spec = backbones.TRUNKS["mobilenet_v2_s8"]
    monkeypatch.setitem(backbones.TRUNKS, "mobilenet_v2_s8", backbones.TrunkSpec(spec.build, spec.out_channels, spec.stride, f"mobilenet_v2-{digest[:8]}.pth"))
    model = AttentionMapModel(trunk="mobilenet_v2_s8")
    model.load_trunk_imagenet(str(path))
    torch.testing.assert_close(model.trunk[3].conv[0][0].weight, reference.features[3].conv[0][0].weight)
    other = tmp_path / "other.pth"
    torch.save({"x": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="refusing to load a different file"):
        model.load_trunk_imagenet(str(other))
    with pytest.raises(ValueError, match="pass download=True"):
        model.load_trunk_imagenet()
    with pytest.raises(ValueError, match="no trunk"):
        AttentionMapModel().load_trunk_imagenet(str(path))
