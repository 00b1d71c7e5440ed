"""Grad-CAM++ cost: (forward + Grad-CAM++) / plain forward, and grad-cam's GradCAMPlusPlus / ours.

Measured in one run on the same model and batch: the seed model and the trunk model, batch 8,
128x128 and 224x224, CPU. Goals: overhead ratio <= 1.15; speed-up over grad-cam >= 2.0.

    python bench/explain_speed.py [--repeats 5] [--batch 8]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _common import interleaved_medians, print_table
from deepfake_attention import AttentionMapModel, GradCAMPlusPlus


class Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["output"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    args = parser.parse_args()
    try:
        from pytorch_grad_cam import GradCAMPlusPlus as Reference
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        Reference = None
        print("grad-cam is not installed (pip install -e '.[dev]'): the reference column is skipped")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.repeats}")
    rows = []
    for trunk in (None, "mobilenet_v2_s8"):
        model = AttentionMapModel(trunk=trunk).eval()
        cam = GradCAMPlusPlus(model)
        for size in args.sizes:
            x = torch.randn(args.batch, 3, size, size)
            targets = [1] * args.batch

            def forward() -> None:
                with torch.no_grad():
                    model(x)

            fns = {"forward": forward, "ours": lambda: cam(x, targets)}
            if Reference is not None:
                reference_cam = Reference(model=Logits(model), target_layers=[model.get_submodule(model.default_target_layer)])
                fns["reference"] = lambda: reference_cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
            times = interleaved_medians(fns, repeats=args.repeats)
            plain, ours, reference = times["forward"], times["ours"], times.get("reference", float("nan"))
            rows.append([trunk or "seed", size, plain, ours, ours / plain, reference, reference / ours])
    print_table(["model", "size", "forward s", "fwd+Grad-CAM++ s", "overhead (goal<=1.15)", "grad-cam s", "speed-up (goal>=2)"], rows)


if __name__ == "__main__":
    main()
