"""The worker side of video analysis: decode a video, sample its frames, find their faces and send
the crops (resized to the model's input) to the main process in chunks of :data:`CHUNK_FRAMES`
sampled frames, so the crops in flight stay bounded however long the video or high the ``--fps``.
Media errors never escape: they end the video with an error chunk. The main side is
``video.VideoAccumulator``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..data.faces import FaceCrop, find_faces_batch
from ..data.inputs import InputItem
from ..data.media import MediaError, regular_file_size
from ..data.transforms import Preprocess, resize_square
from ..data.video import iter_sampled_frames
from ..files import file_sha256

CHUNK_FRAMES = 16
DETECT_FRAMES = 8
"""Frames whose faces are found in one detector pass: full decoded frames wait for it, so it bounds memory
(8 frames of 4K video are 200 MB); CHUNK_FRAMES is a multiple of it."""
from .options import AnalyzeOptions


@dataclass
class SampledFaces:
    """One sampled frame: its position, time (seconds from PTS) and faces (crops at the model's size)."""

    sample_index: int
    frame_index: int | None
    time_s: float
    faces: list[FaceCrop]


@dataclass
class VideoChunk:
    """A worker's message: consecutive sampled frames of one video. The first carries ``info``;
    the last has ``last=True`` and the decoder's ``warning`` or the ``error`` that ended it."""

    index: int
    item: InputItem
    frames: list[SampledFaces]
    first: bool
    last: bool
    info: dict[str, Any] | None = None
    input_sha256: str | None = None
    warning: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def faces(self) -> list[FaceCrop]:
        return [face for frame in self.frames for face in frame.faces]


def iter_video_chunks(index: int, item: InputItem, options: AnalyzeOptions, preprocess: Preprocess) -> Iterator[VideoChunk]:
    """Decode, sample and find faces (worker side); yields :class:`VideoChunk` messages, the last one
    with ``last=True``. Media errors never escape: they end the video with an error chunk."""
    state: dict[str, Any] = {"first": True, "frames": [], "timings": {"decode_s": 0.0, "detect_s": 0.0}, "sha": None}

    def chunk(last: bool, **fields: Any) -> VideoChunk:
        message = VideoChunk(index, item, state["frames"], state["first"], last, input_sha256=state["sha"], timings=state["timings"], **fields)
        state.update(first=False, frames=[], timings={"decode_s": 0.0, "detect_s": 0.0})
        return message

    try:
        regular_file_size(item.path)  # a FIFO or device is refused here: hashing it would wait forever
        try:
            state["sha"] = file_sha256(item.path)
        except OSError:
            pass  # unreadable: opening the video below says why, in words
        clock = time.perf_counter()
        with iter_sampled_frames(item.path, frames=options.frames, fps=options.fps) as sampled:
            info = {
                "duration_s": sampled.info.duration_s, "fps": sampled.info.fps, "width": sampled.info.width, "height": sampled.info.height,
                "rotation": sampled.info.rotation, "codec": sampled.info.codec, "frames_requested": len(sampled.times),
            }
            pending: list[Any] = []

            def detect() -> None:  # the chunk's frames in one detector pass (batched for MTCNN), then only crops are kept
                start = time.perf_counter()
                for frame, faces in zip(pending, find_faces_batch([f.image for f in pending], preprocess, enabled=options.face_detect)):
                    faces = [dataclasses.replace(face, crop=resize_square(face.crop, preprocess.size)) for face in faces]
                    state["frames"].append(SampledFaces(frame.sample_index, frame.frame_index, frame.time_s, faces))
                pending.clear()
                state["timings"]["detect_s"] += time.perf_counter() - start

            for frame in sampled:
                state["timings"]["decode_s"] += time.perf_counter() - clock
                pending.append(frame)
                if len(pending) >= min(DETECT_FRAMES, CHUNK_FRAMES):
                    detect()
                if len(state["frames"]) >= CHUNK_FRAMES:
                    yield chunk(False, info=info if state["first"] else None)
                clock = time.perf_counter()
            if pending:
                detect()
            warning = sampled.report.message or None
        yield chunk(True, info=info if state["first"] else None, warning=warning)
    except MediaError as error:
        yield chunk(True, error=str(error))
