"""Channel and multi-scale attention: shapes, maths by hand, seed defaults, old configs, CAMs, training."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from deepfake_attention import AttentionMapModel, GradCAMPlusPlus, attention_map, load_checkpoint, save_checkpoint
from deepfake_attention.checkpoint import CheckpointConfig
from deepfake_attention.data.transforms import Preprocess
from deepfake_attention.explain.multiscale_render import CAPTION_HEIGHT, render_multiscale
from deepfake_attention.explain.render import TILE
from deepfake_attention.train import load_config, train
from deepfake_attention.train.loop import build_model

from .test_cam import logit, reference_gradcampp
from .train_fixtures import PatchDataset, tiny_config

VARIANTS = {
    "seed": {},
    "se": {"channel_attention": "se"},
    "cbam": {"channel_attention": "cbam"},
    "multiscale": {"attention_scales": (1, 2, 4)},
    "both": {"channel_attention": "se", "attention_scales": (1, 2, 4)},
}
SEED_KEYS = {"output", "features", "attention_weights", "attended_features"}


SHAPE_CASES = [(name, None, training) for name in VARIANTS for training in (True, False)] + [
    ("se", "mobilenet_v2_s8", True), ("multiscale", "mobilenet_v2_s8", False), ("both", "mobilenet_v2_s8", False),
]


@pytest.mark.parametrize(("name", "trunk", "training"), SHAPE_CASES)
def test_output_shapes(name: str, trunk: str | None, training: bool) -> None:
    options = VARIANTS[name]
    model = AttentionMapModel(trunk=trunk, feature_dim=32, **options).train(training)
    size, (h, w, c) = ((18, 22), (18, 22, 3)) if trunk is None else ((64, 72), (8, 9, 32))
    out = model(torch.randn(2, 3, *size))
    extra = ({"channel_weights"} if "channel_attention" in options else set()) | ({"attention_scales"} if "attention_scales" in options else set())
    assert set(out) == SEED_KEYS | extra
    assert out["output"].shape == (2, 2) and out["features"].shape == (2, 32)
    assert out["attention_weights"].shape == (2, 1, h, w) and out["attended_features"].shape == (2, c, h, w)
    weights = out["attention_weights"].detach()
    assert float(weights.min()) > 0 and float(weights.max()) < 1
    if "attention_scales" in options:
        assert out["attention_scales"].shape == (2, 3, 1, h, w)
    if "channel_attention" in options:
        assert out["channel_weights"].shape == (2, c)


def test_defaults_are_the_seed() -> None:
    seed = AttentionMapModel()
    assert not hasattr(seed, "channel_gate") and not seed.multiscale
    config = seed.get_config()
    assert config["channel_attention"] is None and config["attention_scales"] == [1]
    assert not any(key.startswith("channel_gate") or ".blocks." in key for key in seed.state_dict())


def test_fused_map_is_the_softmax_weighted_sum_of_the_scales() -> None:
    model = AttentionMapModel(feature_dim=16, attention_scales=(1, 2, 4)).eval()
    with torch.no_grad():
        model.attention_conv.scale_logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(2, 3, 16, 20)
    out = model(x)
    weights = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    torch.testing.assert_close(model.attention_conv.scale_weights().detach(), weights)
    by_hand = []
    for k, scale in enumerate((1, 2, 4)):
        pooled = x if scale == 1 else F.avg_pool2d(x, scale)
        coarse = model.attention_conv.blocks[k](pooled)
        by_hand.append(F.interpolate(coarse, size=(16, 20), mode="bilinear", align_corners=False) if scale > 1 else coarse)
    per_scale = torch.stack(by_hand, 1)
    torch.testing.assert_close(out["attention_scales"], per_scale)
    torch.testing.assert_close(out["attention_weights"], (per_scale * weights.view(1, 3, 1, 1, 1)).sum(1))
    torch.testing.assert_close(out["attended_features"], x * out["attention_weights"])
    # a side that is not a multiple of the scale still gives a full-size map
    assert model(torch.randn(1, 3, 18, 23))["attention_weights"].shape == (1, 1, 18, 23)


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_channel_gate_by_hand(kind: str) -> None:
    model = AttentionMapModel(input_channels=8, feature_dim=16, channel_attention=kind).eval()
    gate = model.channel_gate
    x = torch.randn(2, 8, 10, 12)
    w1, b1, w2, b2 = gate.fc1.weight[:, :, 0, 0], gate.fc1.bias, gate.fc2.weight[:, :, 0, 0], gate.fc2.bias
    mlp = lambda v: F.linear(torch.relu(F.linear(v, w1, b1)), w2, b2)  # noqa: E731
    logits = mlp(x.mean(dim=(2, 3))) + (mlp(x.flatten(2).max(dim=2).values) if kind == "cbam" else 0)
    expected = torch.sigmoid(logits)
    assert gate.fc1.out_channels == 2  # the seed's bottleneck rule: max(1, 8 // 4)
    out = model(x)
    torch.testing.assert_close(out["channel_weights"], expected)
    gated = x * expected[:, :, None, None]
    torch.testing.assert_close(out["attention_weights"], model.attention_conv(gated))
    torch.testing.assert_close(out["attended_features"], gated * out["attention_weights"])


def test_config_round_trip_and_old_configs(tmp_path) -> None:
    model = AttentionMapModel(feature_dim=16, channel_attention="cbam", attention_scales=(1, 2))
    config = model.get_config()
    assert config["channel_attention"] == "cbam" and config["attention_scales"] == [1, 2]
    rebuilt = AttentionMapModel.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config and list(rebuilt.state_dict()) == list(model.state_dict())
    # a config written before the options existed (the seed's keys and the trunk only)
    old = {"num_classes": 2, "feature_dim": 16, "input_channels": 3, "attention_reduction": 4, "dropout": 0.3, "trunk": None}
    legacy = AttentionMapModel.from_config(old)
    assert legacy.get_config() == {**old, "channel_attention": None, "attention_scales": [1], "frequency_input": None}
    assert list(legacy.state_dict()) == list(AttentionMapModel(feature_dim=16).state_dict())
    assert AttentionMapModel.from_config({"num_classes": 2}).get_config() == AttentionMapModel(num_classes=2).get_config()
    # a release checkpoint of a variant loads strictly; an old-style config.json still loads the seed
    save_checkpoint(model, tmp_path / "variant", CheckpointConfig(model=config, preprocess=Preprocess(size=16)))
    loaded, _ = load_checkpoint(tmp_path / "variant")
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x)["output"], model.eval()(x)["output"])
    seed_dir = tmp_path / "old"
    save_checkpoint(legacy, seed_dir, CheckpointConfig(model=old, preprocess=Preprocess(size=16)))
    data = json.loads((seed_dir / "config.json").read_text())
    data["model"] = old
    (seed_dir / "config.json").write_text(json.dumps(data))
    assert load_checkpoint(seed_dir)[0].get_config()["attention_scales"] == [1]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="channel_attention must be None or one of"):
        AttentionMapModel(channel_attention="eca")
    with pytest.raises(ValueError, match="strictly increasing"):
        AttentionMapModel(attention_scales=(2, 1))
    with pytest.raises(ValueError, match="positive integers"):
        AttentionMapModel(attention_scales=(1, 0))
    with pytest.raises(TypeError, match="sequence of integers"):
        AttentionMapModel(attention_scales=2)
    with pytest.raises(ValueError, match="channel_attention must be None"):
        load_config(None, ["model.channel_attention=eca"])
    with pytest.raises(ValueError, match="strictly increasing"):
        load_config(None, ["model.attention_scales=[1, 1]"])


@pytest.mark.parametrize("name", VARIANTS)
def test_gradcampp_and_attention_maps_work_for_every_variant(name: str) -> None:
    model = AttentionMapModel(feature_dim=16, **VARIANTS[name]).eval()
    x = torch.randn(2, 3, 16, 20)
    for layer in ("feature_extractor.8", "feature_extractor.5"):
        ours = GradCAMPlusPlus(model)(x, 1, normalize=False) if layer == "feature_extractor.8" else GradCAMPlusPlus(model, layer)(x, 1, normalize=False)
        reference = reference_gradcampp(model, model.get_submodule(layer), x, logit(1))
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max()))
    maps = GradCAMPlusPlus(model)(x, 1)
    assert maps.shape == (2, 16, 20) and float(maps.max()) == pytest.approx(1.0)
    with torch.no_grad():
        gate = attention_map(model(x)["attention_weights"], (32, 40))
    assert gate.shape == (2, 32, 40) and 0 < float(gate.min()) and float(gate.max()) < 1


def test_multiscale_panel_shows_every_scale() -> None:
    model = AttentionMapModel(feature_dim=16, attention_scales=(1, 2, 4)).eval()
    crops = [torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8).numpy() for _ in range(2)]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 24, 24))
    panel = render_multiscale(model, out, crops)
    assert panel.width == TILE * 5 and panel.height == 2 * (TILE + CAPTION_HEIGHT)
    with pytest.raises(ValueError, match="single attention scale"):
        render_multiscale(AttentionMapModel(feature_dim=16), out, crops)


@pytest.mark.parametrize("name", ["se", "multiscale", "both"])
def test_training_steps_with_each_variant(tmp_path, name: str) -> None:
    options = VARIANTS[name]
    overrides = {"optim.max_steps": 2, "run.checkpoint_every": 2}
    if "channel_attention" in options:
        overrides["model.channel_attention"] = f"'{options['channel_attention']}'"
    if "attention_scales" in options:
        overrides["model.attention_scales"] = str(list(options["attention_scales"]))
    cfg = tiny_config(tmp_path / name, **overrides)
    assert build_model(cfg).get_config()["attention_scales"] == list(options.get("attention_scales", (1,)))
    torch.manual_seed(cfg.run.seed)  # as train() does before it builds the model
    before = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
    result = train(cfg, train_set=PatchDataset(16), progress=False)
    assert result.step == 2
    model, config = load_checkpoint(result.model_dir)
    assert config.model["channel_attention"] == options.get("channel_attention")
    assert config.model["attention_scales"] == list(options.get("attention_scales", (1,)))
    changed = [k for k, v in model.state_dict().items() if k in before and v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("channel_gate") or ".blocks." in k for k in changed)


def test_highpass_input_adds_a_stem_beside_the_trunk() -> None:
    from deepfake_attention.model.frequency import STEM_CHANNELS, high_pass

    torch.manual_seed(0)
    model = AttentionMapModel(trunk="mobilenet_v2_s8", feature_dim=16, frequency_input="highpass").eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["attended_features"].shape == (2, 32 + STEM_CHANNELS, 8, 8) and out["output"].shape == (2, 2)
    assert AttentionMapModel.from_config(model.get_config()).get_config()["frequency_input"] == "highpass"
    seed = AttentionMapModel(feature_dim=16, frequency_input="highpass")  # no trunk: the stem keeps the resolution
    assert seed(torch.randn(1, 3, 20, 20))["attention_weights"].shape == (1, 1, 20, 20)
    # the residual: zero on a constant image, and x - blur(x) against a literal 3x3 binomial blur
    assert high_pass(torch.full((1, 3, 9, 9), 0.7)).abs().max() < 1e-6
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")[0, 0]
    weights = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 16
    blurred = torch.stack([torch.stack([(padded[i : i + 3, j : j + 3] * weights).sum() for j in range(6)]) for i in range(6)])
    torch.testing.assert_close(high_pass(x)[0, 0], x[0, 0] - blurred)
    assert "frequency_stem" not in dict(AttentionMapModel().named_children())  # off by default: the seed's modules only
    with pytest.raises(ValueError, match="frequency_input"):
        AttentionMapModel(frequency_input="fft")
