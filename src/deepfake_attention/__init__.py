"""deepfake-attention: explainable deepfake detection with spatial attention and Grad-CAM++.

The public API::

    from deepfake_attention import AttentionMapModel, GradCAMPlusPlus, Detector, analyze
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepfake-attention")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from .analysis import analyze
from .analysis_options import AnalyzeOptions, RunSummary
from .checkpoint import CheckpointConfig, CheckpointError, Preprocess, load_checkpoint, save_checkpoint
from .data.media import MediaError
from .detector import Detector
from .explain import GradCAM, GradCAMPlusPlus, attention_map
from .model import AttentionMapModel

load_detector = Detector.load

__all__ = [
    "AnalyzeOptions", "AttentionMapModel", "CheckpointConfig", "CheckpointError", "Detector", "GradCAM",
    "GradCAMPlusPlus", "MediaError", "Preprocess", "RunSummary", "__version__", "analyze", "attention_map",
    "load_checkpoint", "load_detector", "save_checkpoint",
]
