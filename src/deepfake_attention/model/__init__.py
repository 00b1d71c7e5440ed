"""Models: the seed's attention CNN, its optional trunk and its optional attention variants."""

from .backbones import TRUNKS, imagenet_state_dict
from .classifier import AttentionMapModel
from .variants import CHANNEL_ATTENTION, ChannelGate, MultiScaleSpatialAttention

__all__ = ["AttentionMapModel", "CHANNEL_ATTENTION", "ChannelGate", "MultiScaleSpatialAttention", "TRUNKS", "imagenet_state_dict"]
