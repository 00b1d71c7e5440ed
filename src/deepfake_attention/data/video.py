"""Video decoding with PyAV: probe, uniform sampling by time, bounded memory, readable errors.

Sampling decodes *sequentially*: packets are demuxed and decoded forward and, for every target
time, the frame *on screen* at that time is kept: the last frame whose presentation time
(PTS x time_base) is not after the target, as a player shows it (the first frame for a target
before it). Unlike "the nearest frame", this is never a tie: centred targets with as many samples
as frames fall exactly between two frames, and each then gets its own frame. Only the previous
and the current frame are alive (plus the few FFmpeg's frame threads hold), so memory does not
depend on the video's length; ``max_side`` downscales while converting to RGB, so a yielded
image costs at most ``max_side``^2 x 3 bytes. Sequential decoding is also exact for variable frame rate and for
streams whose index is poor (AVI without index, broken files), where seeking is unreliable. When
the next target lies more than ``seek_gap_s`` seconds ahead (long videos, few samples) we seek to
the keyframe before it instead of decoding the whole gap: a seek costs up to one GOP of decoding
(typically 2-10 s of video), so it only pays for gaps longer than that.

Times are seconds from the start of the video stream: ``pts * time_base - start_time`` (equal to
``pts * time_base`` for the usual files whose stream starts at 0). Rotation (display matrix) is
applied, so every image is upright, and non-square pixels are stretched to their display aspect.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .media import MediaError, file_errors, sniff_kind

DEFAULT_FRAMES = 32
DEFAULT_MAX_DIMENSION = 8192
"""Largest width or height accepted by default; larger videos are refused before decoding."""
DEFAULT_SEEK_GAP_S = 10.0
_PROBE_PACKETS = 300  # packets read by probe_video while looking for a first frame (rotation)
_MAX_CONSECUTIVE_ERRORS = 64  # a stream that fails this many packets in a row is given up
_TIME_EPS = 1e-6  # seconds: a frame whose time equals a target (up to rounding) is the one shown then


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


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: RGB ``uint8`` image [H, W, 3], upright. ``frame_index`` counts decoded
    frames from the start (None after a seek); ``time_s`` is its time, ``target_s`` the time asked."""

    sample_index: int
    frame_index: int | None
    time_s: float
    target_s: float
    image: np.ndarray


@dataclass
class VideoReadReport:
    """How a sampled read went; complete once the iterator is exhausted."""

    frames_requested: int
    frames_decoded: int = 0  # frames yielded
    frames_read: int = 0  # frames the decoder produced, sampled or not
    decode_errors: int = 0  # packets the decoder rejected
    corrupt_frames: int = 0  # frames the decoder flagged as corrupt (concealed errors)
    duplicates_skipped: int = 0  # targets whose frame was already yielded (sparse frames there)
    truncated: bool = False  # the stream ended (or broke off) before the video's stated end
    message: str = ""  # a sentence for a person; empty when all went well

    @property
    def ok(self) -> bool:
        """True when nothing went wrong while reading."""
        return not (self.truncated or self.decode_errors or self.corrupt_frames)


def _open(path: str | Path) -> av.container.InputContainer:
    """Open a media file, every failure as a :class:`MediaError` with a readable message."""
    path = Path(path)
    with file_errors():
        if path.is_dir():
            raise MediaError("this is a directory, not a file")
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16) if size else b""
    if size == 0:
        raise MediaError("the file is empty (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as error:
        if sniff_kind(head) == "video":
            raise MediaError(f"the video container is damaged or truncated and cannot be opened ({_reason(error)})") from None
        raise MediaError("not a recognised video format: FFmpeg cannot read this file's container (is it really a video?)") from None
    except av.error.FFmpegError as error:
        raise MediaError(f"the video could not be opened ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
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
    return (height, width) if _quarter_turns(rotation) % 2 else (width, height)


def _quarter_turns(rotation: int) -> int:
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
    container = _open(path)
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


def sample_times(info: VideoInfo, *, frames: int = DEFAULT_FRAMES, fps: float | None = None) -> tuple[float, ...]:
    """Target times in seconds (from the stream start), increasing.

    ``frames=N``: the centres of N equal segments of the duration, ``(i + 0.5) * D / N``; N is
    capped at the video's frame count (more samples than frames would only repeat frames).
    ``fps=F`` (replaces ``frames``): every 1/F seconds from 0, ``k / F`` for ``k / F < D``.
    A video of unknown or zero duration gets the single time 0.
    """
    if fps is not None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
        if info.duration_s <= 0:
            return (0.0,)
        count = max(1, math.ceil(info.duration_s * fps - 1e-9))
        return tuple(k / fps for k in range(count))
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    if info.duration_s <= 0:
        return (0.0,)
    count = min(frames, info.frame_count) if info.frame_count > 0 else frames
    step = info.duration_s / count
    return tuple((i + 0.5) * step for i in range(count))


def iter_sampled_frames(
    path: str | Path,
    *,
    frames: int = DEFAULT_FRAMES,
    fps: float | None = None,
    max_side: int | None = None,
    max_dimension: int = DEFAULT_MAX_DIMENSION,
    seek_gap_s: float | None = DEFAULT_SEEK_GAP_S,
) -> SampledFrames:
    """Iterate over uniformly sampled, upright RGB frames of a video; see :class:`SampledFrames`."""
    return SampledFrames(path, frames=frames, fps=fps, max_side=max_side, max_dimension=max_dimension, seek_gap_s=seek_gap_s)


@dataclass
class _Decoded:
    frame: av.VideoFrame
    time_s: float
    serial: int  # order of decoding, to never yield one frame twice
    index: int | None


class SampledFrames(Iterator[VideoFrame]):
    """Iterator over a video's sampled frames; read :attr:`report` once it is exhausted.

    Opening errors (missing, empty, not a video, audio only, too large) raise :class:`MediaError`
    here, at construction. Decoding errors met on the way are counted and skipped; a stream that
    ends early is reported as truncated. Frames decoded so far are returned and the problem is
    written in :attr:`report` (``report.ok`` is False, ``report.message`` says what happened);
    when not a single frame decodes, iteration raises :class:`MediaError` with that message.
    Use as a context manager (or exhaust it) to close the file.
    """

    def __init__(self, path: str | Path, *, frames: int = DEFAULT_FRAMES, fps: float | None = None, max_side: int | None = None,
                 max_dimension: int = DEFAULT_MAX_DIMENSION, seek_gap_s: float | None = DEFAULT_SEEK_GAP_S) -> None:
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
            raise ValueError(f"max_side must be a positive number of pixels or None, got {max_side!r}")
        if seek_gap_s is not None and not seek_gap_s > 0:
            raise ValueError(f"seek_gap_s must be positive seconds or None (never seek), got {seek_gap_s!r}")
        self.info = probe_video(path, max_dimension=max_dimension)
        self.times = sample_times(self.info, frames=frames, fps=fps)
        self.report = VideoReadReport(frames_requested=len(self.times))
        self._max_side, self._max_dimension, self._seek_gap_s = max_side, max_dimension, seek_gap_s
        self._first_error: str | None = None
        self._container = _open(path)
        self._generator = self._generate()

    def __next__(self) -> VideoFrame:
        return next(self._generator)

    def __enter__(self) -> SampledFrames:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop decoding and close the file (idempotent)."""
        self._generator.close()
        self._container.close()

    def _packets_decoded(self, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; bad packets are counted and skipped."""
        consecutive = 0
        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                self.report.decode_errors += 1
                self._first_error = self._first_error or _reason(error)
                consecutive += 1
                if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                    raise
                continue
            consecutive = 0
            yield from frames

    def _emit(self, chosen: _Decoded, sample_index: int, target: float) -> VideoFrame:
        frame = chosen.frame
        if max(frame.width, frame.height) > self._max_dimension:
            raise MediaError(f"a frame is {frame.width}x{frame.height} pixels, above the limit of {self._max_dimension} px per side")
        width = max(1, round(frame.width * self.info.sample_aspect_ratio)) if abs(self.info.sample_aspect_ratio - 1) > 1e-3 else frame.width
        height = frame.height
        if self._max_side is not None and max(width, height) > self._max_side:
            scale = self._max_side / max(width, height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        if (width, height) != (frame.width, frame.height):
            image = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
        else:
            image = frame.to_ndarray(format="rgb24")
        turns = _quarter_turns(frame.rotation or self.info.rotation)
        if turns:
            image = np.ascontiguousarray(np.rot90(image, k=turns))
        self.report.frames_decoded += 1
        return VideoFrame(sample_index=sample_index, frame_index=chosen.index, time_s=chosen.time_s, target_s=target, image=image)

    def _generate(self) -> Iterator[VideoFrame]:
        targets, report, info = self.times, self.report, self.info
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 1)
        period = 1.0 / info.fps if info.fps > 0 else 0.04
        target_index, serial, index, yielded_serial = 0, 0, 0, -1
        previous: _Decoded | None = None
        last_time, end_time, broke_off = -math.inf, 0.0, None
        try:
            frames = self._packets_decoded(stream)
            while target_index < len(targets):
                seek_to = None
                try:
                    for frame in frames:
                        report.frames_read += 1
                        report.corrupt_frames += bool(frame.is_corrupt)
                        time_s = float(frame.pts * time_base) - info.start_s if frame.pts is not None else max(last_time, -period) + period
                        if time_s <= last_time:  # repeated or out-of-order time (e.g. re-decoded after a seek)
                            continue
                        current = _Decoded(frame, time_s, serial, index)
                        serial += 1
                        index = None if index is None else index + 1
                        # Targets before this frame's time were on screen during the previous frame.
                        while target_index < len(targets) and targets[target_index] < time_s - _TIME_EPS:
                            chosen = previous if previous is not None else current
                            if chosen.serial == yielded_serial:
                                report.duplicates_skipped += 1
                            else:
                                yielded_serial = chosen.serial
                                yield self._emit(chosen, report.frames_decoded, targets[target_index])
                            target_index += 1
                        if target_index >= len(targets):
                            break
                        previous, last_time = current, time_s
                        duration = float(frame.duration * time_base) if frame.duration else period
                        end_time = time_s + duration
                        if self._seek_gap_s is not None and targets[target_index] - time_s > self._seek_gap_s:
                            seek_to = targets[target_index]
                            break
                except av.error.FFmpegError as error:  # demuxing failed, or too many bad packets in a row
                    broke_off = _reason(error)
                    break
                if seek_to is None:
                    break  # end of stream
                frames.close()
                try:
                    self._container.seek(int((seek_to + info.start_s) / time_base), stream=stream, backward=True)
                    previous, index = None, None  # after a seek, frame positions are no longer counted
                except av.error.FFmpegError:  # not seekable: carry on decoding forward
                    self._seek_gap_s = None
                frames = self._packets_decoded(stream)
            # End of stream: targets left fall on the last frame while it is on screen.
            while target_index < len(targets) and previous is not None and targets[target_index] <= end_time + period / 2:
                if previous.serial == yielded_serial:
                    report.duplicates_skipped += 1
                else:
                    yielded_serial = previous.serial
                    yield self._emit(previous, report.frames_decoded, targets[target_index])
                target_index += 1
            missing = len(targets) - target_index
            report.truncated = broke_off is not None or missing > 0
            report.message = self._message(missing, end_time, broke_off)
            if report.frames_decoded == 0:
                raise MediaError(f"no frame of the video could be decoded: {report.message or 'the video stream is empty'}")
        finally:
            self._container.close()

    def _message(self, missing: int, end_time: float, broke_off: str | None) -> str:
        report, parts = self.report, []
        if report.decode_errors:
            parts.append(f"{report.decode_errors} damaged packet(s) could not be decoded ({self._first_error})")
        if report.corrupt_frames:
            parts.append(f"{report.corrupt_frames} frame(s) were decoded with concealed corruption")
        if broke_off is not None:
            parts.append(f"reading broke off at {end_time:.2f} s ({broke_off})")
        if missing:
            parts.append(f"the video ends early: frames decode up to {end_time:.2f} s of the stated {self.info.duration_s:.2f} s")
        if report.duplicates_skipped:  # not an error: the video has fewer frames than times asked there
            parts.append(f"{report.duplicates_skipped} sampled time(s) fell on a frame already returned (frames are sparse there)")
        if not parts:
            return ""
        return "; ".join(parts) + f"; {report.frames_decoded} of {report.frames_requested} sampled frames returned"
