"""Opening and probing videos with PyAV: what a file holds (size, rotation, pixel aspect,
duration, frame rate), every failure as a :class:`~deepfake_attention.data.media.MediaError` with a
sentence a person can act on.

The display matrix reaches decoded frames as side data, so probing decodes the first frame to
learn the rotation; ``width`` x ``height`` are the upright display size.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .media import MediaError, file_errors, regular_file_size, sniff_kind

DEFAULT_MAX_DIMENSION = 8192
"""Largest width or height accepted by default; larger videos are refused before decoding."""
_PROBE_PACKETS = 300  # packets read by probe_video while looking for a first frame (rotation)


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds. ``width`` x ``height`` is the upright display size (rotation and pixel
    aspect applied); ``rotation`` is in degrees counter-clockwise, as PyAV's ``VideoFrame.rotation``
    and ffprobe's display matrix report it (the picture is rotated by it to be shown upright)."""

    duration_s: float
    frame_count: int
    frame_count_estimated: bool  # True when the container does not store it (mkv, webm): duration x fps
    fps: float  # average frame rate
    width: int
    height: int
    rotation: int
    codec: str
    has_audio: bool
    container: str
    start_s: float = 0.0  # the stream's start time; frame times are relative to it
    coded_width: int = 0
    coded_height: int = 0
    sample_aspect_ratio: float = 1.0


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open a media file with PyAV, every failure as a :class:`MediaError` with a readable message."""
    path = Path(path)
    size = regular_file_size(path)  # a FIFO or device is refused before anything opens it
    with file_errors(), path.open("rb") as handle:
        head = handle.read(16) if size else b""
    if size == 0:
        raise MediaError("the file is empty (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as error:
        if sniff_kind(head) == "video":
            raise MediaError(f"the video container is damaged or truncated and cannot be opened ({ffmpeg_reason(error)})") from None
        raise MediaError("not a recognised video format: FFmpeg cannot read this file's container (is it really a video?)") from None
    except av.error.FFmpegError as error:
        raise MediaError(f"the video could not be opened ({ffmpeg_reason(error)})") from None


def ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's explanation without the errno and file name PyAV adds."""
    return str(getattr(error, "strerror", None) or error)


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        holds = "only audio" if container.streams.audio else "no audio or video"
        raise MediaError(f"the file has no video stream (it holds {holds}); pass a video file")
    return container.streams.video[0]


def _as_float(value: Fraction | int | float | None) -> float:
    return float(value) if value else 0.0


def _display_size(width: int, height: int, sar: float, rotation: int) -> tuple[int, int]:
    """Upright display size: pixel aspect applied to the width, then 90/270 degree rotations swap."""
    if sar > 0 and abs(sar - 1.0) > 1e-3:
        width = max(1, round(width * sar))
    return (height, width) if quarter_turns(rotation) % 2 else (width, height)


def quarter_turns(rotation: int) -> int:
    """Counter-clockwise quarter turns that bring the picture upright (rotation rounded to 90 degrees)."""
    return round(rotation / 90) % 4


def _clock_seconds(tag: str | None) -> float:
    """``HH:MM:SS.fraction`` (Matroska's per-stream DURATION tag) in seconds, 0 when absent or unreadable."""
    try:
        hours, minutes, seconds = (tag or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first frame that decodes within the first packets, or None."""
    for count, packet in enumerate(container.demux(stream)):
        if count >= _PROBE_PACKETS:
            return None
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            continue
        if frames:
            return frames[0]
    return None


def probe_video(path: str | Path, *, max_dimension: int = DEFAULT_MAX_DIMENSION) -> VideoInfo:
    """Read a video's header and its first frame (for rotation). Errors are :class:`MediaError`."""
    container = open_video(path)
    try:
        stream = _video_stream(container)
        time_base = stream.time_base or Fraction(1, 1)
        try:
            first = _first_frame(container, stream)
        except av.error.FFmpegError:  # demux failure right at the start: rotation from metadata only
            first = None
        # The display matrix reaches decoded frames as side data (FFmpeg >= 7 no longer exports the
        # old clockwise "rotate" tag), hence one decoded frame.
        rotation = first.rotation if first is not None else 0
        rotation = rotation % 360 - 360 if rotation % 360 > 180 else rotation % 360  # in (-180, 180]
        coded_width = stream.codec_context.width or (first.width if first is not None else 0)
        coded_height = stream.codec_context.height or (first.height if first is not None else 0)
        if coded_width <= 0 or coded_height <= 0:
            raise MediaError("the video stream has no picture size and no frame decodes: the file is damaged")
        if max(coded_width, coded_height) > max_dimension:
            raise MediaError(
                f"video is {coded_width}x{coded_height} pixels, above the limit of {max_dimension} px per side; "
                "raise max_dimension to allow it"
            )
        sar = _as_float(stream.sample_aspect_ratio) or 1.0
        start_s = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif _clock_seconds(stream.metadata.get("DURATION")):  # Matroska/WebM store it per stream as a tag
            duration = _clock_seconds(stream.metadata.get("DURATION"))
        elif container.duration:  # the longest stream: may include audio beyond the video's end
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = int(stream.frames or 0)
        fps = _as_float(stream.average_rate) or (frames / duration if frames and duration else 0.0) or _as_float(stream.guessed_rate)
        if not duration and frames and fps:
            duration = frames / fps
        estimated = frames <= 0
        if estimated:
            frames = max(1, round(duration * fps)) if duration and fps else 0
        width, height = _display_size(coded_width, coded_height, sar, rotation)
        return VideoInfo(
            duration_s=duration, frame_count=frames, frame_count_estimated=estimated, fps=fps,
            width=width, height=height, rotation=rotation, codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio), container=container.format.name,
            start_s=start_s, coded_width=coded_width, coded_height=coded_height, sample_aspect_ratio=sar,
        )
    finally:
        container.close()
