"""Throughput of the seed and trunk models on CPU: images/s of the forward alone (inference
mode) and of forward + Grad-CAM++, and the forward's achieved GFLOP/s against the machine's fp32
matmul peak (goal: >= 80% of that peak for the seed model at 224x224).

The peak is a probe (one 2048x2048 fp32 matmul) timed as one more variant, interleaved with the
models' rounds; the peak is its *best* round, so a probe that ran while the machine was busy
cannot make a model look faster than the machine. Every model and layout is its own copy, and all
variants are interleaved in one measurement (see ``_timing``); the last line is the verdict.

    python bench/inference_speed.py [--batch 8] [--size 224] [--repeats 5] [--threads N] [--clock wall|cpu] [--strict]
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch

from deepfake_attention import AttentionMapModel, GradCAMPlusPlus

from _common import count_macs, matmul_probe, print_table, set_threads, torch_line
from _timing import CLOCKS, Verdict, add_arguments, legend, load_line, measure

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul of the peak probe (default 2048)")
    add_arguments(parser, repeats=5, warmup=1, clock=True)
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    probe, probe_gflop = matmul_probe(args.peak_size)
    fns, gflops = {"peak probe": probe}, {}
    for trunk in (None, "mobilenet_v2_s8"):
        base = AttentionMapModel(trunk=trunk).eval()
        gflops[trunk or "seed"] = 2 * count_macs(base, x) / 1e9
        for layout, fmt in LAYOUTS.items():
            model = copy.deepcopy(base).to(memory_format=fmt)
            xin = x.contiguous(memory_format=fmt)
            cam = GradCAMPlusPlus(model)

            def forward(model: torch.nn.Module = model, xin: torch.Tensor = xin) -> None:
                with torch.inference_mode():
                    model(xin)

            fns[f"{trunk or 'seed'}/{layout}/forward"] = forward
            fns[f"{trunk or 'seed'}/{layout}/cam"] = lambda cam=cam, xin=xin: cam(xin, 1) is None
    print(f"{torch_line()}; batch {args.batch}, {args.size}x{args.size}")
    print(legend(args.repeats, args.warmup_rounds, args.clock))
    t = measure(fns, repeats=args.repeats, warmup=args.warmup_rounds, clock=CLOCKS[args.clock])
    peak_rates = t.rate("peak probe", probe_gflop)
    peak = peak_rates.high
    print(f"fp32 matmul peak ({args.peak_size}x{args.peak_size}): best of {args.repeats} interleaved probes {peak:.1f} GFLOP/s "
          f"(all probes: {peak_rates.show(1)} GFLOP/s)")
    verdict = Verdict()
    rows = []
    for name, gflop in gflops.items():
        for layout in LAYOUTS:
            key = f"{name}/{layout}"
            forward_rate = t.rate(f"{key}/forward", gflop)
            fraction = forward_rate.median / peak
            verdict.bound(f"{key} fraction of peak", fraction, at_most=1.0, why="a forward cannot beat the machine's best matmul rate")
            paired = verdict.ratio(f"{key} forward rate / peak probe rate, paired", t.ratio("peak probe", f"{key}/forward").map(lambda r: r * gflop / probe_gflop))
            over = verdict.ratio(f"{key} (forward + Grad-CAM++) / forward", t.ratio(f"{key}/cam", f"{key}/forward"), at_least=1.0,
                                 why="forward + Grad-CAM++ cannot be faster than the forward it contains")
            rows.append([name, layout, f"{gflop / args.batch:.2f}", t.rate(f"{key}/forward", args.batch).show(1), t.rate(f"{key}/cam", args.batch).show(1),
                         over.show_ratio(), forward_rate.show(1), f"{fraction:.3f}", paired.show_ratio()])
    print_table(["model", "layout", "GFLOP/img", "fwd img/s", "fwd+Grad-CAM++ img/s", "(fwd+G++)/fwd", "fwd GFLOP/s",
                 "of peak (goal>=0.8 seed)", "of peak, paired per round"], rows)
    print("of peak = median forward GFLOP/s / best probe; 'paired per round' divides each round's forward rate by that round's probe")
    return verdict.report(args.strict, load=load_line("after the run"))


if __name__ == "__main__":
    sys.exit(main())
