"""From an RGB face crop to the model's input tensor, the same way in training and inference."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB ``uint8`` image to ``size`` x ``size`` (bilinear, antialiased when shrinking)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def to_tensor(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Stack same-sized RGB ``uint8`` images into a normalised float tensor [B, 3, H, W]."""
    if len(images) == 0:
        raise ValueError("no images to stack")
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return batch.sub_(mean_t).div_(std_t)
