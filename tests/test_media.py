"""Image decoding: every bad input is a MediaError with a readable message; odd formats are handled."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_attention.data.media import MediaError, decode_image, read_image, sniff_kind

from .conftest import random_rgb


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_plain_rgb_round_trips() -> None:
    array = random_rgb()
    decoded = decode_image(encode(Image.fromarray(array)))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, array)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text and not a picture at all", "not a recognised image format"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video file, not an image"),
    ],
)
def test_unusable_bytes(data: bytes, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        decode_image(data)


def test_truncated_jpeg() -> None:
    data = encode(Image.fromarray(random_rgb(64, 64)), "JPEG", quality=90)
    with pytest.raises(MediaError, match="truncated or corrupted"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encode(Image.new("1", (12000, 12000)))  # 144 MP in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(MediaError, match="12000x12000 = 144 MP, above the limit of 64 MP"):
        decode_image(bomb)
    assert decode_image(encode(Image.new("L", (300, 200))), max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(MediaError, match="decompression-bomb guard"):
        decode_image(encode(Image.new("L", (300, 200))), max_pixels=50_000)


def test_exif_orientation_is_honoured() -> None:
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(Image.fromarray(array), "JPEG", exif=exif, quality=95))
    assert decoded.shape == (40, 20, 3)
    assert decoded[:15].mean() > 200 and decoded[25:].mean() < 50  # left half became the top


def test_grayscale_rgba_palette_and_16_bit() -> None:
    gray = decode_image(encode(Image.fromarray(np.full((4, 5), 77, dtype=np.uint8), "L")))
    assert gray.shape == (4, 5, 3) and (gray == 77).all()
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top opaque red, bottom fully transparent
    out = decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[3, 3]) == (255, 255, 255)
    palette = Image.fromarray(random_rgb(8, 8)).convert("P", palette=Image.ADAPTIVE, colors=4)
    assert decode_image(encode(palette)).shape == (8, 8, 3)
    deep = np.array([[0, 32768, 65535]], dtype=np.uint16)
    out16 = decode_image(encode(Image.fromarray(deep)))
    assert out16[0, :, 0].tolist() == [0, 128, 255]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="directory, not a file"):
        read_image(tmp_path)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x00" * 2048)
    with pytest.raises(MediaError, match="above the limit of"):
        read_image(big, max_bytes=1024)


def test_sniff_kind() -> None:
    assert sniff_kind(b"\x00\x00\x00\x18ftypisom") == "video"
    assert sniff_kind(b"\x1aE\xdf\xa3rest") == "video"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00AVI ") == "video"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00WEBP") == "image"
    assert sniff_kind(b"\x89PNG\r\n\x1a\n") == "image"
