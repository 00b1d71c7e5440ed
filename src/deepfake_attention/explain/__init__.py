"""Explanations: the model's attention map, Grad-CAM and Grad-CAM++, and their rendering."""

from .cam import CAMResult, GradCAM, GradCAMPlusPlus, attention_map, normalize_maps, upsample_maps

__all__ = ["CAMResult", "GradCAM", "GradCAMPlusPlus", "attention_map", "normalize_maps", "upsample_maps"]
