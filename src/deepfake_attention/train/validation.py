"""Validation inside the training loop: loss, AUC and accuracy, sharded over ranks."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from . import distributed as dist


def window_auc(pairs: Iterable[tuple[float, int]]) -> float:
    """ROC AUC of (probability, label) pairs; NaN while only one class has been seen."""
    pairs = list(pairs)
    labels = np.array([label for _, label in pairs])
    if len(pairs) == 0 or labels.min() == labels.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, [p for p, _ in pairs]))


@torch.no_grad()
def evaluate_loss_auc(model: torch.nn.Module, dataset: Dataset, batch_size: int, device: torch.device, *, workers: int = 0) -> dict[str, Any]:
    """Mean cross-entropy, ROC AUC and accuracy at 0.5 of ``model`` on ``dataset`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    shard = Subset(dataset, list(range(dist.rank(), len(dataset), dist.world_size())))
    logits, labels = [], []
    for batch in DataLoader(shard, batch_size=batch_size, num_workers=workers):
        images = batch["image"]  # [B, 3, H, W] images, or [B, T, 3, H, W] clips (which cannot be channels_last)
        layout = torch.channels_last if images.dim() == 4 else torch.preserve_format
        logits.append(model(images.to(device, memory_format=layout))["output"].float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    parts = dist.gather_objects((torch.cat(logits) if logits else torch.zeros(0, 2), torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)))
    all_logits = torch.cat([p[0] for p in parts])
    all_labels = torch.cat([p[1] for p in parts])
    probs = torch.softmax(all_logits, dim=1)[:, 1]
    return {
        "val_loss": float(F.cross_entropy(all_logits, all_labels)),
        "val_auc": window_auc(zip(probs.tolist(), all_labels.tolist())),
        "val_acc": float(((probs >= 0.5).long() == all_labels).float().mean()),
        "val_n": int(all_labels.numel()),
    }
