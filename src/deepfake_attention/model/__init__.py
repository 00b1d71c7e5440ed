"""Models: the seed's attention CNN and its optional trunk."""

from .backbones import TRUNKS, imagenet_state_dict
from .classifier import AttentionMapModel

__all__ = ["AttentionMapModel", "TRUNKS", "imagenet_state_dict"]
