"""Video decoding with PyAV: uniform sampling by time, bounded memory, readable errors (probing: `video_probe`).

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

from .media import MediaError
from .video_probe import DEFAULT_MAX_DIMENSION, VideoInfo, ffmpeg_reason, open_video, probe_video, quarter_turns

DEFAULT_FRAMES = 32
DEFAULT_SEEK_GAP_S = 10.0
_MAX_CONSECUTIVE_ERRORS = 64  # a stream that fails this many packets in a row is given up
_TIME_EPS = 1e-6  # seconds: a frame whose time equals a target (up to rounding) is the one shown then

__all__ = ["DEFAULT_FRAMES", "DEFAULT_MAX_DIMENSION", "DEFAULT_SEEK_GAP_S", "SampledFrames", "VideoFrame", "VideoInfo",
           "VideoReadReport", "iter_sampled_frames", "probe_video", "sample_times"]


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
        self._yielded_serial = -1  # the decoded frame yielded last: a frame is never two samples in a row
        self._container = open_video(path)
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
                self._first_error = self._first_error or ffmpeg_reason(error)
                consecutive += 1
                if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                    raise
                continue
            consecutive = 0
            yield from frames

    def _emit(self, chosen: _Decoded, target: float) -> VideoFrame | None:
        """``chosen`` as the sample for ``target``; None (counted) when it was the last one yielded."""
        if chosen.serial == self._yielded_serial:
            self.report.duplicates_skipped += 1
            return None
        self._yielded_serial = chosen.serial
        sample_index = self.report.frames_decoded
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
        turns = quarter_turns(frame.rotation or self.info.rotation)
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
        target_index, serial, index = 0, 0, 0
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
                            sample = self._emit(previous if previous is not None else current, targets[target_index])
                            if sample is not None:
                                yield sample
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
                    broke_off = ffmpeg_reason(error)
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
                sample = self._emit(previous, targets[target_index])
                if sample is not None:
                    yield sample
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
