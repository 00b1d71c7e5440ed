"""Grad-CAM++ cost: (forward + Grad-CAM++) / plain forward, and grad-cam's GradCAMPlusPlus / ours.

Measured in one run on the same model, batch and inputs, in eval mode: the seed model and the trunk
model, batch 8, 128x128 and 224x224, CPU. The plain forward is timed twice, under ``torch.no_grad()``
(what Grad-CAM++ runs up to its target layer) and under ``torch.inference_mode()`` (the cheapest
forward there is, what ``Detector.predict(cam=False)`` uses); the overhead is the per-round paired
ratio against each. Goals: overhead <= 1.10 against both; speed-up over grad-cam >= 2.0.
All variants of one model and size are interleaved (see ``_timing``); the last line is the verdict.

    python bench/explain_speed.py [--repeats 5] [--batch 8] [--sizes 128 224] [--threads N] [--clock wall|cpu]
                                 [--no-reference] [--profile] [--strict]

``--profile`` adds, per model at the largest size, where the time goes: torch.profiler's self CPU
time per operator for the forward and for forward + Grad-CAM++ (per call, after warm-up), and the
operators that make the difference.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from statistics import median

import torch
from torch import nn

from deepfake_attention import AttentionMapModel, GradCAMPlusPlus

from _common import print_table, set_threads, torch_line
from _timing import CLOCKS, Verdict, add_arguments, legend, load_line, measure

TRUNKS = {"seed": None, "mobilenet_v2_s8": "mobilenet_v2_s8"}


class Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["output"]


def variants(model: nn.Module, cam: GradCAMPlusPlus, x: torch.Tensor, targets: list[int], reference: type | None, target_cls: type | None) -> dict:
    def no_grad() -> None:
        with torch.no_grad():
            model(x)

    def inference() -> None:
        with torch.inference_mode():
            model(x)

    fns = {"forward": no_grad, "forward_inference": inference, "ours": lambda: cam(x, targets) is None}
    if reference is not None:
        reference_cam = reference(model=Logits(model), target_layers=[model.get_submodule(model.default_target_layer)])
        fns["reference"] = lambda: reference_cam(input_tensor=x, targets=[target_cls(t) for t in targets]) is None
    return fns


def op_times(fn) -> dict[str, float]:
    """Self CPU seconds of each operator in one call of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e6
    return times


def profile_where(model: nn.Module, cam: GradCAMPlusPlus, x: torch.Tensor, name: str, repeats: int) -> None:
    """Per operator: median self time over ``repeats`` profiled calls of each variant, interleaved, after warm-up."""
    fns = {"forward": variants(model, cam, x, [1] * x.shape[0], None, None)["forward"], "ours": lambda: cam(x, 1)}
    t = measure({key: (lambda fn=fn: op_times(fn)) for key, fn in fns.items()}, repeats=repeats, warmup=1)
    ops = {key: {op: median([run.get(op, 0.0) for run in t.results[key]]) for op in set().union(*t.results[key])} for key in fns}
    plain, ours = ops["forward"], ops["ours"]
    total_plain, total_ours = sum(plain.values()), sum(ours.values())
    print(f"\nprofile, {name} at {x.shape[-1]}x{x.shape[-1]}, batch {x.shape[0]}: torch.profiler self CPU time per operator, median of "
          f"{repeats} profiled calls of each variant (interleaved, after warm-up): forward {1000 * total_plain:.1f} ms, "
          f"forward + Grad-CAM++ {1000 * total_ours:.1f} ms")
    rows = []
    for op in sorted(set(plain) | set(ours), key=lambda k: -abs(ours.get(k, 0.0) - plain.get(k, 0.0)))[:12]:
        a, b = plain.get(op, 0.0), ours.get(op, 0.0)
        rows.append([op, f"{1000 * a:.2f}", f"{1000 * b:.2f}", f"{1000 * (b - a):+.2f}", f"{100 * b / total_ours:.1f}%"])
    print_table(["operator", "forward ms", "fwd+G++ ms", "difference ms", "share of fwd+G++"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--models", nargs="+", choices=list(TRUNKS), default=list(TRUNKS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-reference", action="store_true", help="skip the grad-cam package's GradCAMPlusPlus")
    parser.add_argument("--profile", action="store_true", help="also show where the time goes (torch.profiler), per model at the largest size")
    add_arguments(parser, repeats=5, warmup=1, clock=True)
    args = parser.parse_args()
    set_threads(args.threads)
    reference = target_cls = None
    if not args.no_reference:
        try:
            from pytorch_grad_cam import GradCAMPlusPlus as reference
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as target_cls
        except ImportError:
            print("grad-cam is not installed (pip install -e '.[dev]'): the reference column is skipped")
    torch.manual_seed(0)
    print(f"{torch_line()}; batch {args.batch}, eval mode, same inputs for every variant")
    print(legend(args.repeats, args.warmup_rounds, args.clock))
    verdict = Verdict()
    rows = []
    for name in args.models:
        model = AttentionMapModel(trunk=TRUNKS[name]).eval()
        cam = GradCAMPlusPlus(model)
        for size in args.sizes:
            x = torch.randn(args.batch, 3, size, size)
            t = measure(variants(model, cam, x, [1] * args.batch, reference, target_cls), repeats=args.repeats, warmup=args.warmup_rounds,
                        clock=CLOCKS[args.clock])
            label = f"{name} {size}x{size}"
            why = "forward + Grad-CAM++ cannot be faster than the forward it contains"
            over = verdict.ratio(f"{label} overhead vs no_grad forward", t.ratio("ours", "forward"), at_least=1.0, why=why)
            over_inf = verdict.ratio(f"{label} overhead vs inference_mode forward", t.ratio("ours", "forward_inference"), at_least=1.0, why=why)
            speedup = verdict.ratio(f"{label} speed-up over grad-cam", t.ratio("reference", "ours")).show_ratio() if "reference" in t.names else "n/a"
            rows.append([name, size, t["forward"].show(), t["forward_inference"].show(), t["ours"].show(), over.show_ratio(), over_inf.show_ratio(),
                         t["reference"].show() if "reference" in t.names else "n/a", speedup])
    print_table(["model", "size", "fwd no_grad s", "fwd inference s", "fwd+Grad-CAM++ s", "overhead vs no_grad (goal<=1.10)",
                 "overhead vs inference (goal<=1.10)", "grad-cam s", "speed-up (goal>=2)"], rows)
    if args.profile:
        for name in args.models:
            model = AttentionMapModel(trunk=TRUNKS[name]).eval()
            profile_where(model, GradCAMPlusPlus(model), torch.randn(args.batch, 3, max(args.sizes), max(args.sizes)), name, args.repeats)
    return verdict.report(args.strict, load=load_line("after the run"))


if __name__ == "__main__":
    sys.exit(main())
