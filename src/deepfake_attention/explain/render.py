"""Honest heatmap overlays and per-image panels (PNG), drawn with numpy and Pillow.

Maps are drawn as *evidence*, not decoration: the colour of a pixel follows the map value on
an absolute [0, 1] scale and its opacity follows the map value times a strength, so a region
with no evidence shows the face untouched. For Grad-CAM++ the strength is ``prob_fake``: a
confidently real face does not wear a red hotspot. The attention gate is a sigmoid already on
an absolute scale; it shows where the model looks, before any evidence is weighed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORMAP = "inferno"
MAX_OPACITY = 0.75
TILE = 224
_CAPTION_HEIGHT = 58


@lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to ``size`` = (width, height)."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[::-1] == tuple(size):
        return values
    return np.asarray(Image.fromarray(values, mode="F").resize(size, Image.BILINEAR), dtype=np.float32)


def colorize(values: np.ndarray, cmap: str = COLORMAP) -> np.ndarray:
    """Map values in [0, 1] (clipped) to RGB ``uint8`` with a perceptually uniform colormap."""
    index = np.clip(np.rint(np.nan_to_num(values, nan=0.0) * 255.0), 0, 255).astype(np.uint8)
    return _lut(cmap)[index]


def overlay(image: np.ndarray, values: np.ndarray, strength: float = 1.0, cmap: str = COLORMAP) -> np.ndarray:
    """Blend a [0, 1] map onto an RGB image; per-pixel opacity = MAX_OPACITY * strength * value."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got {image.shape}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    values = np.clip(resize_map(values, (image.shape[1], image.shape[0])), 0.0, 1.0)
    alpha = (MAX_OPACITY * strength * values)[..., None]
    blended = image.astype(np.float32) * (1.0 - alpha) + colorize(values, cmap).astype(np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def evidence_layer(values: np.ndarray, strength: float, size: tuple[int, int] | None = None) -> np.ndarray:
    """A [0, 1] map as an RGBA ``uint8`` layer: colormap colour, alpha ``MAX_OPACITY * strength * value``.

    ``size`` = (width, height) resizes the map first (bilinear). Compositing the layer over an
    image reproduces :func:`overlay` with the same strength.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    values = np.clip(np.nan_to_num(resize_map(values, size) if size else np.asarray(values, np.float32), nan=0.0), 0.0, 1.0)
    alpha = np.clip(np.rint(255.0 * MAX_OPACITY * strength * values), 0, 255).astype(np.uint8)
    return np.dstack([colorize(values), alpha])


def colorbar(width: int, height: int = 10, cmap: str = COLORMAP) -> np.ndarray:
    """A horizontal [0, 1] colour bar, RGB ``uint8`` [height, width, 3]."""
    return np.repeat(colorize(np.linspace(0.0, 1.0, width))[None], height, axis=0)


@dataclass(frozen=True)
class FaceView:
    """What a panel row shows for one face."""

    crop: np.ndarray
    """The face as the model saw it, RGB uint8."""
    attention: np.ndarray
    """Attention gate in [0, 1] (absolute), any resolution."""
    gradcampp: np.ndarray | None
    """Grad-CAM++ normalised to [0, 1], or None when not computed."""
    prob_fake: float
    label: str


def _tile(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((TILE, TILE), Image.BILINEAR)


def face_row(face: FaceView, threshold: float, *, title: str = "", untrained: bool = False) -> Image.Image:
    """One row of a panel: input, attention overlay, Grad-CAM++ overlay, captions and colour bar."""
    crop = np.asarray(_tile(face.crop))
    tiles = [crop, overlay(crop, face.attention, 1.0)]
    captions = ["input", "attention gate (where it looks, 0-1)"]
    if face.gradcampp is not None:
        tiles.append(overlay(crop, face.gradcampp, face.prob_fake))
        captions.append("Grad-CAM++ fake evidence x P(fake)")
    width = TILE * len(tiles)
    row = Image.new("RGB", (width, TILE + _CAPTION_HEIGHT), (255, 255, 255))
    for k, tile in enumerate(tiles):
        row.paste(Image.fromarray(tile), (k * TILE, _CAPTION_HEIGHT))
    draw = ImageDraw.Draw(row)
    verdict = f"{face.label.upper()}  P(fake)={face.prob_fake:.3f}  threshold={threshold:.3f}"
    if untrained:
        verdict = "UNTRAINED MODEL - scores are meaningless | " + verdict
    draw.text((4, 2), (title + "  " if title else "") + verdict, fill=(200, 0, 0) if face.label == "fake" else (0, 0, 0), font=_font(13))
    for k, caption in enumerate(captions):
        draw.text((k * TILE + 4, 22), caption, fill=(60, 60, 60), font=_font(11))
    bar = colorbar(TILE - 60)
    for k in range(1, len(tiles)):
        row.paste(Image.fromarray(bar), (k * TILE + 30, 40))
        draw.text((k * TILE + 4, 38), "0", fill=(60, 60, 60), font=_font(10))
        draw.text((k * TILE + TILE - 26, 38), "1", fill=(60, 60, 60), font=_font(10))
    return row


def render_panel(faces: list[FaceView], threshold: float, *, title: str = "", untrained: bool = False) -> Image.Image:
    """Stack one :func:`face_row` per face into a panel image."""
    if not faces:
        raise ValueError("a panel needs at least one face")
    rows = [face_row(face, threshold, title=f"{title} face {k}" if len(faces) > 1 else title, untrained=untrained) for k, face in enumerate(faces)]
    return stack_rows(rows)


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Paste images one under the other on white, left-aligned."""
    panel = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (255, 255, 255))
    top = 0
    for row in rows:
        panel.paste(row, (0, top))
        top += row.height
    return panel


def map_png(values: np.ndarray, size: tuple[int, int] | None = None) -> Image.Image:
    """A colourised [0, 1] map as an RGB image (optionally resized to ``size`` = (w, h))."""
    if size is not None:
        values = resize_map(values, size)
    return Image.fromarray(colorize(values))
