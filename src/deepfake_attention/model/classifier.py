"""``AttentionMapModel``: the seed's spatial-attention CNN, with an optional trunk in front and optional channel / multi-scale attention."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .attention import EXTRACTOR_WIDTH, feature_extractor, spatial_attention
from .backbones import imagenet_state_dict, trunk_spec
from .frequency import HighPassStem, check_frequency_input
from .variants import ChannelGate, MultiScaleSpatialAttention, check_channel_attention, check_scales

DEFAULTS: dict[str, Any] = {"attention_reduction": 4, "dropout": 0.3, "trunk": None, "channel_attention": None, "attention_scales": [1],
                             "frequency_input": None}
"""Values of the optional config keys; :meth:`AttentionMapModel.from_config` fills in the missing ones
(configs written before an option existed)."""
OPTION_KEYS = ("attention_scales", "channel_weights")
"""Output keys the options add (present only when their option is on)."""


class AttentionMapModel(nn.Module):
    """Spatial attention -> conv 64-128-256 -> 512-d fusion -> classifier, as the seed specifies.

    Args:
        input_channels: channels of the image (3 for RGB).
        num_classes: logits out (2: real, fake).
        feature_dim: width of the fusion layer, i.e. of the ``features`` vector.
        attention_reduction: the attention bottleneck has ``max(1, C // attention_reduction)``
            channels, ``C`` being the channels the block sees (the seed: 4).
        dropout: dropout after the fusion layer (the seed: 0.3).
        trunk: ``None`` (the seed, on pixels) or the name of a trunk in
            :data:`deepfake_attention.model.backbones.TRUNKS` run before the seed block.
        channel_attention: ``None`` (the seed), ``"se"`` or ``"cbam"``: a channel gate
            (:class:`~.variants.ChannelGate`, submodule ``channel_gate``) reweights the block's
            input map before the spatial attention.
        attention_scales: ``(1,)`` (the seed) or pooling factors such as ``(1, 2, 4)``: the
            spatial attention runs at each scale and the maps are fused with learned weights
            (:class:`~.variants.MultiScaleSpatialAttention`, then ``attention_conv``).
        frequency_input: ``None`` (the seed) or ``"highpass"``: a fixed high-pass residual of the
            image through a small stem (:class:`~.frequency.HighPassStem`, submodule
            ``frequency_stem``) at the trunk's stride, concatenated to the block's input map.

    ``forward(x)`` returns the seed's dict in train and eval mode alike:
    ``output`` [B, num_classes] logits, ``features`` [B, feature_dim],
    ``attention_weights`` [B, 1, h, w] and ``attended_features`` [B, C, h, w], where
    ``(C, h, w)`` is the image's shape without a trunk and the trunk map's shape with one.
    The options add keys and keep the meaning of these: with several scales
    ``attention_weights`` is the fused map and ``attention_scales`` [B, S, 1, h, w] holds the
    per-scale maps (upsampled to ``(h, w)``); with a channel gate ``channel_weights`` [B, C]
    holds its weights and ``attended_features`` is the gated map times the spatial attention.
    With the defaults the model, its state_dict keys and its outputs are exactly the seed's.
    """

    def __init__(
        self,
        input_channels: int = 3,
        num_classes: int = 2,
        feature_dim: int = 512,
        *,
        attention_reduction: int = 4,
        dropout: float = 0.3,
        trunk: str | None = None,
        channel_attention: str | None = None,
        attention_scales: Sequence[int] = (1,),
        frequency_input: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1 or feature_dim < 1:
            raise ValueError(f"num_classes and feature_dim must be >= 1, got {num_classes}, {feature_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_channels = input_channels
        self.attention_reduction = attention_reduction
        self.dropout = dropout
        self.trunk_name = trunk
        self.channel_attention = check_channel_attention(channel_attention)
        self.attention_scales = check_scales(attention_scales)
        self.frequency_input = check_frequency_input(frequency_input)
        block_channels, stride = input_channels, 1
        if trunk is not None:
            spec = trunk_spec(trunk)
            if input_channels != spec.input_channels:
                raise ValueError(f"trunk {trunk!r} takes {spec.input_channels}-channel images, got input_channels={input_channels}")
            self.trunk = spec.build()
            block_channels, stride = spec.out_channels, spec.stride
        if self.frequency_input is not None:
            self.frequency_stem = HighPassStem(input_channels, stride)
            block_channels += self.frequency_stem.out_channels
        if self.channel_attention is not None:
            self.channel_gate = ChannelGate(block_channels, self.channel_attention, attention_reduction)
        if self.multiscale:
            self.attention_conv = MultiScaleSpatialAttention(block_channels, self.attention_scales, attention_reduction)
        else:
            self.attention_conv = spatial_attention(block_channels, attention_reduction)
        self.feature_extractor = feature_extractor(block_channels)
        self.fusion = nn.Sequential(nn.Linear(EXTRACTOR_WIDTH, feature_dim), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Sequential(nn.Linear(feature_dim, num_classes))

    # -- configuration -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Every constructor argument; the seed's three keys come first."""
        return {
            "num_classes": self.classifier[-1].out_features,
            "feature_dim": self.fusion[0].out_features,
            "input_channels": self.input_channels,
            "attention_reduction": self.attention_reduction,
            "dropout": self.dropout,
            "trunk": self.trunk_name,
            "channel_attention": self.channel_attention,
            "attention_scales": list(self.attention_scales),
            "frequency_input": self.frequency_input,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AttentionMapModel":
        """Rebuild a model from :meth:`get_config`'s dict; unknown keys are an error, missing
        optional keys take their :data:`DEFAULTS` (configs written before an option existed)."""
        known = {"num_classes", "feature_dim", "input_channels", *DEFAULTS}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        config = {**DEFAULTS, **config}
        config["attention_scales"] = tuple(config["attention_scales"])
        return cls(**config)

    @property
    def multiscale(self) -> bool:
        """True when the spatial attention runs at more than one scale (or at one scale other than 1)."""
        return self.attention_scales != (1,)

    @property
    def default_target_layer(self) -> str:
        """Name of the Grad-CAM(++) target: the last ReLU of ``feature_extractor``."""
        return "feature_extractor.8"

    def load_trunk_imagenet(self, path: str | None = None, *, download: bool = False) -> None:
        """Initialise the trunk from ImageNet weights (a local file, or downloaded if asked)."""
        if self.trunk_name is None:
            raise ValueError("this model has no trunk; build it with trunk='mobilenet_v2_s8'")
        self.trunk.load_state_dict(imagenet_state_dict(self.trunk_name, path, download=download), strict=True)

    # -- forward -------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Trunk (if any), channel gate (if any), attention gate and extractor: ``attention_weights``,
        ``attended_features``, ``pooled`` and the options' keys (``channel_weights``, ``attention_scales``)."""
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"expected a [B, {self.input_channels}, H, W] tensor, got shape {tuple(x.shape)}")
        image = x
        if self.trunk_name is not None:
            x = self.trunk(x)
        if self.frequency_input is not None:
            x = torch.cat([x, self.frequency_stem(image)], dim=1)
        extra: dict[str, torch.Tensor] = {}
        if self.channel_attention is not None:
            channel_weights = self.channel_gate(x)
            x = x * channel_weights
            extra["channel_weights"] = channel_weights.flatten(1)
        if self.multiscale:
            attention_weights, extra["attention_scales"] = self.attention_conv(x)
        else:
            attention_weights = self.attention_conv(x)
        attended_features = x * attention_weights
        pooled = self.feature_extractor(attended_features).flatten(1)
        return {"attention_weights": attention_weights, "attended_features": attended_features, "pooled": pooled, **extra}

    def forward_head(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fusion and classifier on the pooled 256-d vector: ``features`` and ``output``."""
        features = self.fusion(pooled)
        return {"features": features, "output": self.classifier(features)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        body = self.forward_features(x)
        head = self.forward_head(body["pooled"])
        return {
            "output": head["output"],
            "features": head["features"],
            "attention_weights": body["attention_weights"],
            "attended_features": body["attended_features"],
            **{key: value for key, value in body.items() if key in OPTION_KEYS},
        }
