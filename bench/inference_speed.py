"""Throughput of the seed and trunk models on CPU: images/s of the forward alone (inference
mode) and of forward + Grad-CAM++, and the forward's achieved GFLOP/s against a matmul peak
measured in the same run (goal: >= 80% of that peak for the seed model at 224x224).

    python bench/inference_speed.py [--batch 8] [--size 224] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch

from _common import count_macs, interleaved_medians, matmul_peak_gflops, print_table
from deepfake_attention import AttentionMapModel, GradCAMPlusPlus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = matmul_peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {peak:.1f} GFLOP/s; batch {args.batch}, {args.size}x{args.size}")
    rows = []
    for trunk in (None, "mobilenet_v2_s8"):
        model = AttentionMapModel(trunk=trunk).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        gflop = 2 * count_macs(model, x) / 1e9
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = model.to(memory_format=fmt)
            xin = x.contiguous(memory_format=fmt)
            cam = GradCAMPlusPlus(model)

            def forward() -> None:
                with torch.inference_mode():
                    model(xin)

            times = interleaved_medians({"forward": forward, "cam": lambda: cam(xin, 1)}, repeats=args.repeats)
            achieved = gflop / times["forward"]
            rows.append([trunk or "seed", layout, f"{gflop / args.batch:.2f}", args.batch / times["forward"], args.batch / times["cam"], achieved, achieved / peak])
    print_table(["model", "layout", "GFLOP/img", "fwd img/s", "fwd+Grad-CAM++ img/s", "fwd GFLOP/s", "of peak (goal>=0.8 seed)"], rows)


if __name__ == "__main__":
    main()
