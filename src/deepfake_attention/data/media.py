"""Safe decoding of image files: every failure becomes a :class:`MediaError` with a readable message.

Handles EXIF orientation, grayscale, RGBA/LA (composited on white), palette, CMYK, 16-bit and
float images, and refuses decompression bombs *before* decoding the pixels.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg"})
DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image decoded by default (64 MP, e.g. 8000x8000); larger ones are refused as bombs."""
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

# Magic numbers of video containers, to tell a video from a broken image without trusting names.
_VIDEO_MAGIC = ((4, b"ftyp"), (0, b"\x1aE\xdf\xa3"), (0, b"RIFF"), (0, b"\x00\x00\x01\xba"))


class MediaError(ValueError):
    """An input that cannot be used; ``str(error)`` is a sentence for the person who gave it."""


def sniff_kind(head: bytes) -> str:
    """``"video"`` when the first bytes look like a video container, ``"image"`` otherwise."""
    for offset, magic in _VIDEO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if magic == b"RIFF" and head[8:12] != b"AVI ":
                continue
            return "video"
    return "image"


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an RGB ``uint8`` array [H, W, 3], upright per its EXIF orientation."""
    if len(data) == 0:
        raise MediaError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # our own max_pixels check below decides, with a better message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if sniff_kind(data[:16]) == "video":
            raise MediaError("this is a video file, not an image") from None
        raise MediaError("not a recognised image format (the bytes are not JPEG, PNG, BMP, GIF, TIFF or WebP)") from None
    except Image.DecompressionBombError as error:
        raise MediaError(f"image refused as a likely decompression bomb: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise MediaError(f"the image header is corrupted ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise MediaError(
            f"image is {width}x{height} = {width * height / 1e6:.0f} MP, above the limit of "
            f"{max_pixels / 1e6:.0f} MP (decompression-bomb guard); raise max_pixels to allow it"
        )
    if width == 0 or height == 0:
        raise MediaError(f"image has no pixels ({width}x{height})")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise MediaError(f"the image data is truncated or corrupted ({error})") from None
    return to_rgb_array(image)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode as RGB ``uint8``: high bit depths scaled (not clipped), alpha composited on white."""
    mode = image.mode
    if mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":  # floating point: no natural range, stretch what is there
            values = values - float(values.min())
            top = max(float(values.max()), 1e-12)
        elif mode.startswith("I;16") or 255 < float(values.max()) <= 65535:
            top = 65535.0
        else:
            top = max(float(values.max()), 255.0)
        gray = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


@contextmanager
def file_errors() -> Iterator[None]:
    """Turn file-system errors raised in the block into a :class:`MediaError` with a readable sentence."""
    try:
        yield
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except IsADirectoryError:
        raise MediaError("this is a directory, not a file") from None
    except PermissionError:
        raise MediaError("permission denied when reading the file") from None
    except OSError as error:
        raise MediaError(f"the file could not be read ({error.strerror or error})") from None


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)


def special_file(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is when it is neither a regular file nor a folder
    (``"a named pipe (FIFO)"``, ``"a socket"``, ``"a character device"``, ``"a block device"``), else None."""
    return next((name for test, name in _SPECIAL_FILES if test(mode)), None)


def regular_file_size(path: str | Path) -> int:
    """The size of the regular file ``path``, learnt from ``stat`` alone (nothing is opened).

    A folder, FIFO, socket or device is a :class:`MediaError`: reading a FIFO waits for a writer
    forever, a device may never end. Other file-system failures are :class:`MediaError` too.
    """
    with file_errors():
        info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise MediaError("this is a directory, not a file")
    kind = special_file(info.st_mode)
    if kind is not None:
        raise MediaError(f"this is {kind}, not a regular file: it was not opened (reading it could wait forever)")
    return info.st_size


def read_bytes(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A file's bytes, with file-system failures, non-regular and oversized files as :class:`MediaError`."""
    path = Path(path)
    size = regular_file_size(path)
    with file_errors():
        if size > max_bytes:
            raise MediaError(f"file is {size / 2**20:.0f} MiB, above the limit of {max_bytes / 2**20:.0f} MiB")
        return path.read_bytes()


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read and decode an image file; see :func:`decode_image`. Errors are :class:`MediaError`."""
    return decode_image(read_bytes(path, max_bytes=max_bytes), max_pixels=max_pixels)
