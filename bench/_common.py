"""Helpers shared by the benchmarks that need torch: MAC counting, a matmul peak probe, table printing.

Timing itself (warm-up, interleaved rounds, spreads, the verdict) is in ``_timing``."""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward through convolutions and linear layers."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def matmul_probe(size: int = 2048) -> tuple[Callable[[], object], float]:
    """A peak probe: a callable doing one fp32 ``size`` x ``size`` matmul, and its GFLOP. Time it as one
    variant among the others (interleaved) and take the *best* round as the machine's practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return (lambda: a @ b), 2 * size**3 / 1e9


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` when given (on a shared machine: no more threads than free cores)."""
    if threads:
        torch.set_num_threads(threads)


def torch_line() -> str:
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "unknown"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load}"


def print_table(header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
