"""deepfake-attention: explainable deepfake detection with spatial attention and Grad-CAM++.

The public API::

    from deepfake_attention import AttentionMapModel, GradCAMPlusPlus, Detector, analyze
"""

from .analysis import AnalyzeOptions, RunSummary, analyze
from .checkpoint import CheckpointConfig, CheckpointError, load_checkpoint, save_checkpoint
from .data.media import MediaError
from .data.transforms import Preprocess
from .detector import Detector
from .explain import GradCAM, GradCAMPlusPlus, attention_map
from .model import AttentionMapModel
from .version import __version__

load_detector = Detector.load

__all__ = [
    "AnalyzeOptions", "AttentionMapModel", "CheckpointConfig", "CheckpointError", "Detector", "GradCAM",
    "GradCAMPlusPlus", "MediaError", "Preprocess", "RunSummary", "__version__", "analyze", "attention_map",
    "load_checkpoint", "load_detector", "save_checkpoint",
]
