"""Grad-CAM++ is eq. 19 exactly: against a literal implementation, on awkward layers, safely."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_attention import AttentionMapModel, GradCAM, GradCAMPlusPlus


def reference_gradcampp(model: nn.Module, layer: nn.Module, x: torch.Tensor, score_of) -> torch.Tensor:
    """Eq. 19 written out term by term in float64, with the guard stated in DESIGN.md; raw maps at input size."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    model.eval()
    out = model(x)
    handle.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(score_of(out).sum(), a)
    a, g = a.double(), g.double()
    s = a.sum(dim=(2, 3), keepdim=True)
    numerator = g**2
    denominator = 2 * g**2 + s * g**3
    alpha = torch.where((g != 0) & (denominator != 0), numerator / torch.where(denominator != 0, denominator, 1.0), 0.0)
    weights = (alpha * torch.relu(g)).sum(dim=(2, 3))
    cam = torch.relu((weights[:, :, None, None] * a).sum(dim=1))
    return F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0].float().detach()


def minmax(maps: torch.Tensor) -> torch.Tensor:
    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    return torch.where(high > low, (maps - low) / (high - low).clamp_min(1e-30), torch.zeros_like(maps))


def logit(c):
    return lambda out: (out["output"] if isinstance(out, dict) else out)[:, c]


@pytest.mark.parametrize("layer", ["feature_extractor.8", "feature_extractor.5", "feature_extractor.6", "attention_conv.2"])
def test_matches_literal_eq19(seed_model: AttentionMapModel, layer: str) -> None:
    """The seed's last ReLU (before global pooling), an inner ReLU and a conv with negative activations."""
    x = torch.randn(3, 3, 16, 20)
    cam = GradCAMPlusPlus(seed_model, layer)
    ours = cam(x, 1, normalize=False)
    ref = reference_gradcampp(seed_model, seed_model.get_submodule(layer), x, logit(1))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    torch.testing.assert_close(cam(x, 1), minmax(ref), rtol=0, atol=1e-5)


def test_trunk_layer_matches_eq19_and_is_upsampled() -> None:
    model = AttentionMapModel(trunk="mobilenet_v2_s8", feature_dim=16).eval()
    x = torch.randn(2, 3, 64, 64)
    for layer in ("trunk.5", "feature_extractor.8"):
        ours = GradCAMPlusPlus(model, layer)(x, 0, normalize=False)
        assert ours.shape == (2, 64, 64)
        ref = reference_gradcampp(model, model.get_submodule(layer), x, logit(0))
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


class Linear2x2(nn.Module):
    """A = the input (identity target layer); score = sum(W * A): gradients are W, by hand."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.target = nn.Identity()
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.target(x)
        score = (a * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_hand_computed_weights_with_a_vanishing_denominator() -> None:
    # channel 0: A = [[-1, 0], [0, 0]], S = -1; g = [[2, 1], [0.5, -1]]: 2 + S g = 0 where g = 2 (guarded to 0),
    # so w0 = 1/(2-1) + 0.5/(2-0.5) = 4/3. channel 1: A = [[1, 2], [3, 4]], S = 10; g = [[0.1, 0], [0, 0]]:
    # w1 = 0.1/(2+1) = 1/30. L = relu(w0 A0 + w1 A1).
    a = torch.tensor([[[[-1.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [3.0, 4.0]]]])
    w = torch.tensor([[[2.0, 1.0], [0.5, -1.0]], [[0.1, 0.0], [0.0, 0.0]]])
    model = Linear2x2(w)
    weights = GradCAMPlusPlus.channel_weights(a, w.unsqueeze(0))
    torch.testing.assert_close(weights, torch.tensor([[4.0 / 3.0, 1.0 / 30.0]]))
    raw = GradCAMPlusPlus(model, "target")(a.clone(), 1, normalize=False)
    expected = torch.relu(4.0 / 3.0 * a[0, 0] + 1.0 / 30.0 * a[0, 1])
    torch.testing.assert_close(raw[0], expected)
    assert torch.isfinite(raw).all()


def test_all_zero_map_is_zeros_not_nan() -> None:
    model = Linear2x2(torch.zeros(1, 2, 2))
    maps = GradCAMPlusPlus(model, "target")(torch.rand(2, 1, 2, 2), 1)
    assert torch.equal(maps, torch.zeros(2, 2, 2))


def test_tiny_gradients_are_not_swamped() -> None:
    """Eq. 19 is invariant to scaling g when S g << 2; a fixed eps would not be."""
    a = torch.rand(1, 3, 4, 4)
    g = torch.randn(1, 3, 4, 4)
    big = GradCAMPlusPlus.channel_weights(a, g * 1e-3) / 1e-3
    small = GradCAMPlusPlus.channel_weights(a, g * 1e-12) / 1e-12
    torch.testing.assert_close(small, big, rtol=1e-2, atol=0)
    assert (small.abs() > 0).all()


def test_constant_gradient_shortcut_equals_the_general_form() -> None:
    a = torch.randn(2, 5, 6, 7)
    g = torch.randn(2, 5, 1, 1).expand(2, 5, 6, 7).contiguous()
    fast = GradCAMPlusPlus.channel_weights(a, g)
    g_perturbed = g.clone()
    g_perturbed[0, 0, 0, 0] += 1e-3  # no longer constant: the general path
    general = GradCAMPlusPlus.channel_weights(a, g_perturbed)
    s = a.sum(dim=(2, 3))
    r = g[:, :, 0, 0].clamp(min=0)
    torch.testing.assert_close(fast, 42 * r / (2 + s * r))
    torch.testing.assert_close(general[1], fast[1])


def test_batched_targets_and_default_predicted_class(seed_model: AttentionMapModel) -> None:
    x = torch.randn(4, 3, 12, 12)
    cam = GradCAMPlusPlus(seed_model)
    per_sample = cam(x, [0, 1, 1, 0])
    for i, c in enumerate([0, 1, 1, 0]):
        torch.testing.assert_close(per_sample[i], cam(x[i : i + 1], c)[0], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        predicted = seed_model(x)["output"].argmax(1)
    torch.testing.assert_close(cam(x), cam(x, predicted))
    diff = cam(x, score_fn=lambda logits: logits[:, 1] - logits[:, 0], normalize=False)
    ref = reference_gradcampp(seed_model, seed_model.feature_extractor[8], x, lambda out: out["output"][:, 1] - out["output"][:, 0])
    torch.testing.assert_close(diff, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_plain_gradcam_is_mean_gradient_weighting(seed_model: AttentionMapModel) -> None:
    x = torch.randn(2, 3, 10, 10)
    store = {}
    handle = seed_model.feature_extractor[5].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    out = seed_model(x)["output"]
    handle.remove()
    (g,) = torch.autograd.grad(out[:, 0].sum(), store["a"])
    expected = torch.relu((g.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1)).detach()
    torch.testing.assert_close(GradCAM(seed_model, "feature_extractor.5")(x, 0, normalize=False), expected)


def test_leaves_the_model_as_found(seed_model: AttentionMapModel) -> None:
    seed_model.train()
    seed_model.fusion.eval()  # a mixed state must come back mixed
    for p in seed_model.parameters():
        p.grad = torch.full_like(p, 7.0)
    stats = seed_model.feature_extractor[1].running_mean.clone()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with torch.no_grad():  # works inside a no_grad caller
        maps = GradCAMPlusPlus(seed_model)(x)
    assert maps.shape == (2, 8, 8) and not maps.requires_grad
    assert seed_model.training and not seed_model.fusion.training and seed_model.feature_extractor.training
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in seed_model.parameters())
    assert x.grad is None
    assert torch.equal(seed_model.feature_extractor[1].running_mean, stats)
    assert all(not m._forward_hooks for m in seed_model.modules())


def test_frozen_model_and_plain_input_still_work(seed_model: AttentionMapModel) -> None:
    for p in seed_model.parameters():
        p.requires_grad_(False)
    maps = GradCAMPlusPlus(seed_model)(torch.randn(1, 3, 8, 8))
    assert maps.shape == (1, 8, 8) and torch.isfinite(maps).all()


def test_clear_errors(seed_model: AttentionMapModel) -> None:
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        frozen = torch.randn(1, 3, 8, 8)
        with pytest.raises(RuntimeError, match="outside torch.inference_mode"):
            GradCAMPlusPlus(seed_model)(x)
    with pytest.raises(RuntimeError, match="created under torch.inference_mode"):
        GradCAMPlusPlus(seed_model)(frozen)
    unused = nn.Conv2d(3, 3, 1)
    seed_model.add_module("unused", unused)
    with pytest.raises(RuntimeError, match="produced no activation"):
        GradCAMPlusPlus(seed_model, "unused")(x)
    assert not unused._forward_hooks
    with pytest.raises(ValueError, match="no submodule named"):
        GradCAMPlusPlus(seed_model, "nope")
    with pytest.raises(ValueError, match="no default_target_layer"):
        GradCAMPlusPlus(nn.Sequential(nn.Conv2d(3, 2, 1)))
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 1\]"):
        GradCAMPlusPlus(seed_model)(x, 5)
    with pytest.raises(ValueError, match="must be \\[B, K, h, w\\]"):
        GradCAMPlusPlus(seed_model, "fusion.0")(x)
    with pytest.raises(KeyError, match="no key 'logits'"):
        GradCAMPlusPlus(seed_model, output_key="logits")(x)


def test_inplace_modified_target_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="modified in place"):
        GradCAMPlusPlus(model, "0")(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("kind", ["tensor", "tuple", "dict"])
def test_any_output_shape(kind: str) -> None:
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, x):
            y = self.body(x)
            return {"logits": y} if kind == "dict" else (y, None) if kind == "tuple" else y

    x = torch.randn(2, 3, 6, 6)
    maps = GradCAMPlusPlus(Wrapped(), "body.1", output_key="logits" if kind == "dict" else None)(x, 2)
    assert maps.shape == (2, 6, 6) and float(maps.max()) == pytest.approx(1.0)
    torch.testing.assert_close(maps, GradCAMPlusPlus(body, "1")(x, 2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_maths_in_fp32_under_autocast(seed_model: AttentionMapModel, dtype: torch.dtype) -> None:
    with torch.no_grad():
        seed_model.classifier[0].weight.mul_(50)
    x = torch.randn(2, 3, 16, 16)
    exact = GradCAMPlusPlus(seed_model)(x, 1)
    with torch.autocast("cpu", dtype=dtype):
        mixed = GradCAMPlusPlus(seed_model)(x, 1)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    assert float((mixed - exact).abs().max()) < 0.1
    assert float(torch.corrcoef(torch.stack([mixed.flatten(), exact.flatten()]))[0, 1]) > 0.99


def _reaches_through_a_mean(model: nn.Module, layer: str, x: torch.Tensor) -> bool:
    from deepfake_attention.explain import cam as cam_module

    store = {}
    with cam_module._captured_activation(model.get_submodule(layer), store):
        out = model(x)
    return cam_module._spatial_mean_edge(out["output"][:, 1].sum(), store["activation"]) is not None


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pooled_gradient_shortcut_equals_the_full_gradient(seed_model: AttentionMapModel, layout, monkeypatch) -> None:
    """Before global pooling dS/dA is taken at the pooled output (never materialised); same maps as the full gradient."""
    from deepfake_attention.explain import cam as cam_module

    model = seed_model.to(memory_format=layout)
    x = torch.randn(3, 3, 12, 14).contiguous(memory_format=layout)
    assert _reaches_through_a_mean(model, "feature_extractor.8", x)
    assert not _reaches_through_a_mean(model, "feature_extractor.5", x)  # a conv follows: gradients vary over space
    shortcut = GradCAMPlusPlus(model)(x, 1, normalize=False)
    plain = GradCAM(model)(x, 1, normalize=False)
    monkeypatch.setattr(cam_module, "_spatial_mean_edge", lambda root, activation: None)
    torch.testing.assert_close(shortcut, GradCAMPlusPlus(model)(x, 1, normalize=False), rtol=1e-6, atol=1e-6 * float(shortcut.abs().max()))
    torch.testing.assert_close(plain, GradCAM(model)(x, 1, normalize=False), rtol=1e-6, atol=1e-6 * float(plain.abs().max()))
    ref = reference_gradcampp(model, model.feature_extractor[8], x, logit(1))
    torch.testing.assert_close(shortcut, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


POOLINGS = {
    "mean over (2, 3)": (lambda a: a.mean(dim=(2, 3)), True),
    "mean over (-1, -2), keepdim": (lambda a: a.mean(dim=(-1, -2), keepdim=True).flatten(1), True),
    "mean over w, then over h": (lambda a: a.mean(dim=3).mean(dim=2), False),  # constant gradient, but not one mean: general path
    "mean and max": (lambda a: torch.cat([a.mean(dim=(2, 3)), a.amax(dim=(2, 3))], dim=1), False),  # A reached twice
}


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_pooled_shortcut_only_when_the_score_reaches_the_activation_through_one_spatial_mean(pooling: str) -> None:
    pool, shortcut = POOLINGS[pooling]

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.head = nn.LazyLinear(2)

        def forward(self, x: torch.Tensor) -> dict:
            return {"output": self.head(pool(self.act(self.conv(x))))}

    model = Pooled().eval()
    x = torch.randn(2, 3, 6, 7)
    model(x)  # materialise the lazy head
    assert _reaches_through_a_mean(model, "act", x) is shortcut
    ref = reference_gradcampp(model, model.act, x, logit(1))
    ours = GradCAMPlusPlus(model, "act")(x, 1, normalize=False)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
