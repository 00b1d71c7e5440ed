"""Against the public ``grad-cam`` package (test-only dependency), where its fixed eps=1e-6 matters little."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_attention import AttentionMapModel, GradCAM, GradCAMPlusPlus

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam", reason="the grad-cam package is a dev extra")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


class Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["output"]


@pytest.fixture
def scaled_seed_model() -> AttentionMapModel:
    """Classifier weights scaled so target-layer gradients are of order 0.1 to 1 (checked below)."""
    torch.manual_seed(0)
    model = AttentionMapModel().eval()
    with torch.no_grad():
        model.classifier[0].weight.mul_(30000.0)
    return model


def _target_gradient_scale(model: AttentionMapModel, x: torch.Tensor) -> float:
    store = {}
    handle = model.feature_extractor[8].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    out = model(x)["output"]
    handle.remove()
    (g,) = torch.autograd.grad(out[:, 1].sum(), store["a"])
    return float(g[g > 0].mean())


@pytest.mark.parametrize("ours, theirs, tolerance", [(GradCAMPlusPlus, "GradCAMPlusPlus", 1e-3), (GradCAM, "GradCAM", 1e-5)])
def test_matches_the_grad_cam_package(scaled_seed_model: AttentionMapModel, ours, theirs: str, tolerance: float) -> None:
    x = torch.randn(4, 3, 32, 32)
    assert 0.05 < _target_gradient_scale(scaled_seed_model, x) < 2.0
    targets = [1, 0, 1, 1]
    mine = ours(scaled_seed_model)(x, targets).numpy()
    reference_cls = getattr(pytorch_grad_cam, theirs)
    with reference_cls(model=Logits(scaled_seed_model), target_layers=[scaled_seed_model.feature_extractor[8]]) as reference:
        ref = reference(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    assert mine.shape == ref.shape
    assert float(np.abs(mine - ref).max()) <= tolerance
