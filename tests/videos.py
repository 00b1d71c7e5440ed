"""Small test videos made on the fly with PyAV, whose frames can be read back.

Every frame carries its index as a row of black/white ``CELL`` x ``CELL`` cells (binary, most
significant bit first) on a moving gradient, with a red block at the top-left and a blue one at
the bottom-right: any rotation, mirroring or channel swap changes the image visibly, and
:func:`read_index` recovers which frame a decoded image is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepfake_attention.data.video_writer import write_video

CELL = 8


def coded_frame(index: int, width: int = 160, height: int = 120, bits: int = 12) -> np.ndarray:
    """RGB uint8 [height, width, 3]: frame ``index`` of the test pattern."""
    if bits * CELL > width or height < 3 * CELL:
        raise ValueError(f"a {width}x{height} frame cannot hold {bits} cells of {CELL} px")
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 60 + ((x + 3 * index) % 64)
    image[..., 1] = 60 + ((y + 2 * index) % 64)
    image[..., 2] = 90
    for bit in range(bits):
        on = (index >> (bits - 1 - bit)) & 1
        image[CELL : 2 * CELL, bit * CELL : (bit + 1) * CELL] = 255 if on else 0
    image[:CELL, : 2 * CELL] = (230, 20, 20)  # red, top-left
    image[-CELL:, -2 * CELL :] = (20, 20, 230)  # blue, bottom-right
    return image


def read_index(image: np.ndarray, bits: int = 12) -> int:
    """The frame index written by :func:`coded_frame` (image upright, same size)."""
    row = image[CELL + 2 : 2 * CELL - 2, :, :].astype(np.float64).mean(axis=(0, 2))
    value = 0
    for bit in range(bits):
        cell = row[bit * CELL + 2 : (bit + 1) * CELL - 2].mean()
        value = (value << 1) | int(cell > 127)
    return value


def frames(count: int, width: int = 160, height: int = 120, bits: int = 12) -> Iterator[np.ndarray]:
    """The coded frames 0 .. count - 1, generated lazily."""
    return (coded_frame(i, width, height, bits) for i in range(count))


def make_video(path: Path, count: int = 50, fps: float = 25, *, width: int = 160, height: int = 120, bits: int = 12, **kwargs) -> Path:
    """A coded video written by the library's :func:`write_video` (``kwargs`` are passed on)."""
    write_video(frames(count, width, height, bits), path, fps, **kwargs)
    return path


def make_noise_video(path: Path, count: int = 75, *, width: int = 160, height: int = 120, codec: str = "libx264",
                     moov_at_end: bool = False, audio: bool = False) -> Path:
    """Textured video (large packets, keyframe every 10 frames), written with PyAV directly: used for
    corruption tests, for an mp4 whose index (moov) is at the end, and for a video with audio."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    options = {} if moov_at_end or path.suffix != ".mp4" else {"movflags": "+faststart"}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=25, options={"g": "10"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i in range(count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="rgb24")))
            if sound is not None and i % 2 == 0:
                _mux_audio(container, sound, i // 2)
        container.mux(stream.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return path


def _mux_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, index: int) -> None:
    samples = np.sin(np.arange(1024) * 0.05 + index).astype(np.float32)[None, :] * 0.1
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 16000, index * 1024
    container.mux(stream.encode(frame))


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An audio-only file (AAC in .m4a, or PCM in .mka)."""
    codec = "pcm_s16le" if path.suffix == ".mka" else "aac"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=16000)
        for index in range(int(seconds * 16000 / 1024)):
            if codec == "pcm_s16le":
                samples = (np.sin(np.arange(1024) * 0.05 + index) * 3000).astype(np.int16)[None, :]
                frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                frame.sample_rate, frame.pts = 16000, index * 1024
                container.mux(stream.encode(frame))
            else:
                _mux_audio(container, stream, index)
        container.mux(stream.encode(None))
    return path


def damage(path: Path, out: Path, *, keep: float | None = None, garbage_at: float | None = None, garbage_bytes: int = 3000) -> Path:
    """A damaged copy: cut to the first ``keep`` fraction of the bytes, or with ``garbage_bytes``
    random bytes written at the ``garbage_at`` fraction of the file."""
    data = bytearray(path.read_bytes())
    if keep is not None:
        data = data[: int(len(data) * keep)]
    if garbage_at is not None:
        start = int(len(data) * garbage_at)
        data[start : start + garbage_bytes] = np.random.default_rng(0).integers(0, 256, garbage_bytes, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def shown_index(times: Sequence[float], target: float) -> int:
    """Index of the frame on screen at ``target``: the last one whose time is not after it (the
    first frame for earlier targets). The reference for sampling."""
    return max([i for i, t in enumerate(times) if t <= target + 1e-9] or [0])


def make_raw(path: Path, stored: Sequence[np.ndarray], *, display_matrix: Sequence[int] | None = None,
             sample_aspect_ratio: Fraction | None = None, fps: int = 25) -> Path:
    """Frames stored as given, written with PyAV directly (independently of write_video), with an
    optional raw FFmpeg display matrix (9 ints, 16.16 / 2.30 fixed point) as phones write it, and
    an optional pixel aspect ratio (anamorphic video)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = stored[0].shape[1], stored[0].shape[0], "yuv420p"
        if display_matrix is not None:
            stream.set_display_matrix(list(display_matrix))
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        for image in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path

PORTRAIT_PHONE_MATRIX = (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
"""The matrix a phone held upright writes (its ``rotate`` tag says 90: turn 90 degrees clockwise to
show). FFmpeg reports it as a rotation of -90 degrees (counter-clockwise convention)."""
