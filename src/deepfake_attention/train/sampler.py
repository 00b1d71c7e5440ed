"""Which samples each step sees: a pure function of (seed, epoch, step), so resumed and
distributed runs see exactly the samples an uninterrupted single process would."""

from __future__ import annotations

import torch

from ..data.datasets import Sampling


def epoch_permutation(num_samples: int, seed: int, epoch: int, sampling: Sampling | None = None) -> torch.Tensor:
    """The epoch's order of sample indices: a shuffle, or what ``sampling`` asks for."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    if sampling is None or (not sampling.pairs and sampling.weights is None):
        return torch.randperm(num_samples, generator=generator)
    units = sampling.units(num_samples)
    if sampling.weights is None:
        order = torch.randperm(units, generator=generator)
    else:
        order = torch.multinomial(torch.tensor(sampling.weights, dtype=torch.float64), units, replacement=True, generator=generator)
    return torch.stack([2 * order, 2 * order + 1], dim=1).flatten() if sampling.pairs else order


def steps_per_epoch(num_samples: int, global_batch: int, drop_last: bool) -> int:
    """Optimiser steps in one epoch."""
    full, rest = divmod(num_samples, global_batch)
    return full if drop_last or rest == 0 else full + 1


def step_indices(num_samples: int, global_batch: int, seed: int, epoch: int, step_in_epoch: int, *, rank: int = 0, world_size: int = 1, drop_last: bool = False,
                 sampling: Sampling | None = None) -> list[int]:
    """Sample indices of this rank's part of one global batch.

    The global batch is the ``step_in_epoch``-th slice of the epoch's permutation; rank ``r`` of
    ``W`` takes its ``r``-th contiguous share (ranks then average gradients, so the update equals
    one process on the whole global batch).
    """
    if sampling is not None and sampling.pairs and global_batch % (2 * world_size):
        raise ValueError(f"paired sampling needs a batch size divisible by 2 x the world size ({2 * world_size}), got {global_batch}")
    order = epoch_permutation(num_samples, seed, epoch, sampling)
    batch = order[step_in_epoch * global_batch : (step_in_epoch + 1) * global_batch]
    if world_size == 1:
        return batch.tolist()
    if len(batch) % world_size:
        raise ValueError(f"a global batch of {len(batch)} does not split over {world_size} ranks; use drop_last and a batch size divisible by the world size")
    share = len(batch) // world_size
    return batch[rank * share : (rank + 1) * share].tolist()
