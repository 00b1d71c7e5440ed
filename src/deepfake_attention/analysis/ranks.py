"""The ranks of a sharded ``analyze`` run: this process's rank and world size (from an initialised
process group or torchrun's environment), a gloo group for the small objects the ranks exchange,
and each rank's device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    """This process's place in the run: rank, world size, and the gloo group for small objects."""

    rank: int = 0
    world: int = 1
    group: Any = None
    owned: bool = False
    """True when :func:`join_ranks` started the process group (and :meth:`close` ends it)."""

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self.group)

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def join_ranks() -> Ranks:
    """Join the run's ranks: an initialised process group, or torchrun's environment
    (``WORLD_SIZE`` > 1: a gloo group is started; analysis exchanges only small objects),
    else a single process."""
    from ..train.distributed import init_from_env

    if not dist.is_available():
        return Ranks()
    owned = not dist.is_initialized()
    if not init_from_env(torch.device("cpu")):
        return Ranks()
    world = dist.get_world_size()
    if world == 1:
        return Ranks(owned=owned)
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return Ranks(dist.get_rank(), world, group, owned)


def rank_device(device: str, ranks: Ranks) -> torch.device:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` (modulo the GPUs) under torchrun."""
    from ..device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None and ranks.world > 1:
        local = int(os.environ.get("LOCAL_RANK", ranks.rank))
        return torch.device("cuda", local % torch.cuda.device_count())
    return resolved
