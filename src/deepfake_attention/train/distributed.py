"""The little the loop needs from ``torch.distributed``: who am I, and reductions that are
no-ops in a single process. Launch with ``torchrun``; gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> bool:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); True if joined."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order ([value] in a single process)."""
    if not is_distributed():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
