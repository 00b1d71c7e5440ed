"""Write RGB frames to a video file with PyAV (annotated outputs, test fixtures).

Frames are encoded as they arrive (memory stays at one frame), into a temporary file beside the
target that is renamed into place at the end: a failed or interrupted write leaves no half file.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Preferred encoders per container, best first; the first one this FFmpeg build has is used.
_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "h264", "mpeg4"),
    ".m4v": ("libx264", "h264", "mpeg4"),
    ".mov": ("libx264", "h264", "mpeg4"),
    ".mkv": ("libx264", "h264", "mpeg4"),
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4", "mjpeg"),
}
_TIME_BASE = Fraction(1, 90_000)  # for explicit frame times: fine enough for any frame rate


def available_codec(suffix: str) -> str | None:
    """The encoder :func:`write_video` uses for a file extension (``".mp4"``), None if there is none."""
    for name in _CODECS.get(suffix.lower(), ()):
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    return None


def _even(image: np.ndarray) -> np.ndarray:
    """Pad to even height and width by repeating the last row/column (4:2:0 chroma needs even sizes)."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _check_frame(image: np.ndarray, index: int, size: tuple[int, int] | None) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TypeError(f"frame {index} must be an RGB uint8 array [H, W, 3], got {got}")
    if size is not None and image.shape[:2] != size:
        raise ValueError(f"frame {index} is {image.shape[1]}x{image.shape[0]} but the first frame is {size[1]}x{size[0]}; all frames must share one size")


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float,
    *,
    codec: str | None = None,
    times_s: Sequence[float] | None = None,
    rotation: int = 0,
    options: Mapping[str, str] | None = None,
) -> None:
    """Encode RGB ``uint8`` frames [H, W, 3] (all one size) to ``path``; the extension picks the container.

    ``fps``: nominal frame rate (frames per second). ``codec``: encoder name, by default the best
    one available for the extension (see :func:`available_codec`). ``times_s``: optional
    presentation time of each frame in seconds, increasing (variable frame rate); by default frame
    ``i`` is shown at ``i / fps``. ``rotation``: display-matrix rotation written to the file, in
    degrees counter-clockwise as :func:`~deepfake_attention.data.video.probe_video` reads it back
    (players rotate the stored frames by it). ``options``: encoder options, e.g. ``{"crf": "18"}``.
    Odd sizes are padded by one repeated row/column. Raises ValueError/TypeError for bad arguments.
    """
    path = Path(path)
    if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    codec = codec or available_codec(path.suffix)
    if codec is None:
        raise ValueError(f"no video encoder for {path.suffix!r} files; use one of {', '.join(sorted(_CODECS))}")
    rate = Fraction(fps).limit_denominator(1001)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        _encode(frames, tmp, rate, codec, times_s, rotation, dict(options or {}), path.suffix.lower())
        os.replace(tmp, path)
    except av.error.FFmpegError as error:
        raise ValueError(f"could not encode {path.name} with {codec}: {error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _encode(frames: Iterable[np.ndarray], tmp: str, rate: Fraction, codec: str, times_s: Sequence[float] | None,
            rotation: int, options: dict[str, str], suffix: str) -> None:
    container_options = {"movflags": "+faststart"} if suffix in {".mp4", ".m4v", ".mov"} else {}
    with av.open(tmp, "w", format=_FORMATS.get(suffix), options=container_options) as container:
        stream = None
        size = None
        last_pts = -1
        for index, image in enumerate(frames):
            _check_frame(image, index, size)
            if stream is None:
                size = image.shape[:2]
                stream = container.add_stream(codec, rate=rate, options=options)
                even = _even(image)
                stream.width, stream.height = even.shape[1], even.shape[0]
                stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
                if times_s is not None:  # no B-frames: with them MP4 muxers misstate a VFR track's duration
                    stream.time_base = stream.codec_context.time_base = _TIME_BASE
                    stream.codec_context.max_b_frames = 0
                if rotation:
                    if not hasattr(stream, "set_display_rotation"):
                        raise ValueError(f"writing a rotation needs PyAV >= 18 (installed: {av.__version__})")
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(_even(image), format="rgb24")
            if times_s is not None:
                if index >= len(times_s):
                    raise ValueError(f"times_s has {len(times_s)} entries but more frames were given")
                pts = round(times_s[index] / _TIME_BASE)
                if pts <= last_pts:
                    raise ValueError(f"times_s must increase: entry {index} ({times_s[index]} s) is not after the previous one")
                frame.pts, frame.time_base, last_pts = pts, _TIME_BASE, pts
            container.mux(stream.encode(frame))
        if stream is None:
            raise ValueError("no frames to write: give at least one RGB frame")
        if times_s is not None and index + 1 != len(times_s):
            raise ValueError(f"times_s has {len(times_s)} entries for {index + 1} frames")
        container.mux(stream.encode(None))


_FORMATS = {".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov", ".mp4": "mp4", ".m4v": "mp4"}
