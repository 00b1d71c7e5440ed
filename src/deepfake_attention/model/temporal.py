"""Temporal attention pooling: the seed's "temporal extension", a small head over one face track.

A track of ``T`` frames gives ``T`` per-frame feature vectors (the seed model's 512-d
``features``). The head scores each frame with a learned function, turns the scores into
weights over the frames (``softmax`` over time) and classifies the weighted mean feature::

    s_t = w2 . tanh(W1 f_t + b1) + b2          (one score per frame)
    a   = softmax(s)                            (frame weights, sum to 1)
    logits = classifier(sum_t a_t f_t)

so a clip where only a few frames are manipulated can still be called fake: the weights can
concentrate on those frames instead of diluting them as a plain mean does. The weights are
reported per frame (``frame_weights``). It is an *option*: ``analyze`` uses it only when asked
(``temporal_head=True``) and the checkpoint ships one; the per-frame model is unchanged.

Storage: a release checkpoint carries the head as ``temporal_head.safetensors`` beside
``model.safetensors``, described in ``config.json`` under ``info["temporal_head"]`` (its config and
SHA-256). The frame model's own weights file and strict loading are untouched; the head is loaded
strictly too (missing, unexpected or mis-shaped keys are errors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TemporalAttentionPooling(nn.Module):
    """Attention pooling over the frames of one track, then a linear classifier.

    Args:
        feature_dim: width of the per-frame features (the frame model's ``feature_dim``).
        hidden: width of the scoring MLP.
        num_classes: logits out (2: real, fake).
        dropout: dropout on the pooled feature before the classifier (training only).

    ``forward(features [B, T, D], mask [B, T] bool or None)`` returns ``output`` [B, num_classes]
    logits, ``weights`` [B, T] (softmax over the valid frames; 0 on masked ones) and ``pooled`` [B, D].
    """

    def __init__(self, feature_dim: int = 512, hidden: int = 128, num_classes: int = 2, *, dropout: float = 0.0) -> None:
        super().__init__()
        if feature_dim < 1 or hidden < 1 or num_classes < 1:
            raise ValueError(f"feature_dim, hidden and num_classes must be >= 1, got {feature_dim}, {hidden}, {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.feature_dim, self.hidden, self.num_classes, self.dropout_p = feature_dim, hidden, num_classes, dropout
        self.score = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def get_config(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "hidden": self.hidden, "num_classes": self.num_classes, "dropout": self.dropout_p}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TemporalAttentionPooling":
        """Rebuild from :meth:`get_config`'s dict; unknown keys are an error."""
        unknown = sorted(set(config) - {"feature_dim", "hidden", "num_classes", "dropout"})
        if unknown:
            raise ValueError(f"unknown temporal head config keys {unknown}")
        return cls(**config)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if features.dim() != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"expected features [B, T, {self.feature_dim}], got shape {tuple(features.shape)}")
        scores = self.score(features).squeeze(-1)
        if mask is not None:
            if mask.shape != scores.shape:
                raise ValueError(f"mask must be [B, T] = {tuple(scores.shape)}, got {tuple(mask.shape)}")
            if not bool(mask.any(dim=1).all()):
                raise ValueError("every clip needs at least one valid frame in mask")
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        weights = torch.softmax(scores.float(), dim=1).to(features.dtype)
        pooled = (weights.unsqueeze(-1) * features).sum(dim=1)
        return {"output": self.classifier(self.dropout(pooled)), "weights": weights, "pooled": pooled}


class ClipModel(nn.Module):
    """A frame model and a temporal head trained together on clip batches.

    ``forward(x)``: a 4-D image batch [N, 3, H, W] goes through the frame model alone (its usual
    dict); a 5-D clip batch [B, T, 3, H, W] goes through the frame model as B*T images, then the
    head over each clip's T feature vectors. The result has the frame model's keys with clip-level
    ``output`` [B, C] and ``features`` (the pooled [B, D]), the per-frame ``attention_weights``
    [B*T, 1, h, w] (for the attention regularisers), ``frame_weights`` [B, T] and the frame
    model's own ``frame_output`` [B*T, C]. With ``freeze_frame_model`` the frame model stays in
    eval mode and gets no gradient: only the head learns.
    """

    def __init__(self, frame_model: nn.Module, head: TemporalAttentionPooling, *, freeze_frame_model: bool = False) -> None:
        super().__init__()
        self.frame_model, self.head, self.freeze_frame_model = frame_model, head, freeze_frame_model
        if freeze_frame_model:
            for parameter in frame_model.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "ClipModel":
        super().train(mode)
        if self.freeze_frame_model:
            self.frame_model.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() == 4:
            return self.frame_model(x)
        if x.dim() != 5:
            raise ValueError(f"expected images [N, C, H, W] or clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        batch, frames = x.shape[:2]
        out = self.frame_model(x.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        head = self.head(out["features"].reshape(batch, frames, -1))
        return {
            "output": head["output"], "features": head["pooled"], "attention_weights": out["attention_weights"],
            "attended_features": out["attended_features"], "frame_weights": head["weights"], "frame_output": out["output"],
        }
