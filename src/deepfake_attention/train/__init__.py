"""Training: config, attention-aware losses, the loop and its resumable checkpoints."""

from .config import TrainConfig, load_config
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]
