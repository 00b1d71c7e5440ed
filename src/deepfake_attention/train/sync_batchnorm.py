"""Synchronised BatchNorm that also works on CPU (gloo): torch's SyncBatchNorm is GPU-only.

Batch statistics are summed over ranks with the differentiable ``all_reduce`` of
``torch.distributed.nn``, so with an equal share of the global batch per rank the forward and
the gradients equal those of one process on the whole batch. State-dict keys are those of
``nn.BatchNorm2d``, so checkpoints load into the plain model.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics cover the global batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.shape[1]
        local = x.float()
        count = torch.full((1,), local.numel() / channels, dtype=torch.float32, device=x.device)
        packed = _all_reduce(torch.cat([local.sum(dim=(0, 2, 3)), count]))
        total = packed[-1]
        mean = packed[:channels] / total
        # two passes, as one process computes it: E[(x - mean)^2], not E[x^2] - mean^2
        centred = local - mean.view(1, channels, 1, 1)
        var = _all_reduce((centred * centred).sum(dim=(0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean.dtype))
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))
                self.num_batches_tracked.add_(1)
        shape = (1, channels, 1, 1)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # its replacement in _functional_collectives is private API
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(tensor)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` in ``module`` by :class:`DistributedBatchNorm2d`, keeping its state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = DistributedBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement.to(next(child.buffers()).device))
        else:
            convert_batchnorm(child)
    return module
