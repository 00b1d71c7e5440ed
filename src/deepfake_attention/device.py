"""Device selection: nothing hard-codes CUDA."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is checked and returned."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    return resolved


AMP_MODES = ("auto", "off", "bf16", "fp16")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device``, or None for full precision.

    ``"auto"``: bf16 on CUDA devices that support it, fp16 on other CUDA devices, off on CPU.
    """
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16
