"""Pictures of a video's analysis: a timeline of P(fake), a contact sheet, an annotated video.

- :func:`render_timeline`: P(fake) per sampled frame (x: time in seconds from PTS), one line
  per face track, the decision threshold, frames whose attention map disagrees with the same
  track's previous frame (low consistency) ringed in red, and sampled frames without any face
  ticked along the bottom.
- :func:`render_contact_sheet`: the most suspicious face-frames, each as the usual panel row
  (crop, attention gate, Grad-CAM++ with opacity following P(fake)), two per line.
- :func:`write_annotated_video`: the sampled frames again (a second decoding pass, so no frame is
  held in memory meanwhile), each face box drawn with its heatmap overlaid and its score.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.video import iter_sampled_frames
from ..data.video_writer import write_video
from ..explain.render import FaceView, face_row, overlay

SHEET_COLUMNS = 2
ANNOTATE_MAX_SIDE = 1280
"""Longest side of annotated output frames (pixels): larger videos are downscaled for writing."""
_TRACK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


@dataclass(frozen=True)
class TimelineTrack:
    """One track's points: times (s), P(fake) and which points are low-consistency frames."""

    track_id: int
    times_s: Sequence[float]
    probs: Sequence[float]
    low_consistency: Sequence[bool]


def render_timeline(
    tracks: Sequence[TimelineTrack], threshold: float, *, duration_s: float, no_face_times_s: Sequence[float] = (),
    title: str = "", untrained: bool = False,
) -> Image.Image:
    """The timeline figure as an RGB image (about 900 x 320 pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for track in tracks:
        colour = _TRACK_COLOURS[track.track_id % len(_TRACK_COLOURS)]
        axes.plot(track.times_s, track.probs, "-o", color=colour, markersize=3.5, linewidth=1.2, label=f"track {track.track_id}")
        low = [k for k, flag in enumerate(track.low_consistency) if flag]
        if low:
            axes.scatter([track.times_s[k] for k in low], [track.probs[k] for k in low], s=80, facecolors="none", edgecolors="red", linewidths=1.5, zorder=3)
    if any(any(t.low_consistency) for t in tracks):
        axes.scatter([], [], s=80, facecolors="none", edgecolors="red", label="low attention consistency")
    if no_face_times_s:
        axes.plot(no_face_times_s, [0.01] * len(no_face_times_s), "|", color="0.4", markersize=10, label="no face")
    axes.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    axes.set_xlim(0.0, max(duration_s, max((max(t.times_s) for t in tracks if t.times_s), default=0.0), 1e-3))
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("P(fake)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize=7, ncols=2)
    heading = ("UNTRAINED MODEL - scores are meaningless | " if untrained else "") + title
    axes.set_title(heading, fontsize=9, color="#b00020" if untrained else "black")
    figure.tight_layout()
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy())


@dataclass(frozen=True)
class SheetFace:
    """A face-frame on the contact sheet."""

    view: FaceView
    time_s: float
    track_id: int


def render_contact_sheet(faces: Sequence[SheetFace], threshold: float, *, title: str = "", untrained: bool = False) -> Image.Image:
    """Panel rows of ``faces`` (most suspicious first), ``SHEET_COLUMNS`` per line, under a title line."""
    if not faces:
        raise ValueError("a contact sheet needs at least one face")
    rows = [face_row(face.view, threshold, title=f"t={face.time_s:.2f}s track {face.track_id}", untrained=untrained) for face in faces]
    width, height = max(r.width for r in rows), max(r.height for r in rows)
    columns = min(SHEET_COLUMNS, len(rows))
    lines = (len(rows) + columns - 1) // columns
    header = 26
    sheet = Image.new("RGB", (columns * width, header + lines * height), (255, 255, 255))
    ImageDraw.Draw(sheet).text((6, 5), title, fill=(0, 0, 0), font=ImageFont.load_default(size=14))
    for k, row in enumerate(rows):
        sheet.paste(row, ((k % columns) * width, header + (k // columns) * height))
    return sheet


@dataclass(frozen=True)
class AnnotatedFace:
    """A face to draw on a frame: boxes in original (upright) pixels, a [0, 1] map over ``crop_box``."""

    box: tuple[int, int, int, int]
    crop_box: tuple[int, int, int, int]
    heatmap: np.ndarray | None
    strength: float
    caption: str
    fake: bool


def write_annotated_video(
    source: str | Path, target: str | Path, faces_by_sample: dict[int, list[AnnotatedFace]], *,
    frames: int, fps: float | None, out_fps: float,
) -> int:
    """Decode ``source`` again with the same sampling (``frames``/``fps``, as in the analysis) and write
    each sampled frame to ``target`` at ``out_fps`` with its faces' heatmaps and boxes drawn on.
    Returns the number of frames written. Errors are MediaError (decoding) or ValueError (writing)."""
    count = 0

    def annotated() -> Iterator[np.ndarray]:
        nonlocal count
        with iter_sampled_frames(source, frames=frames, fps=fps, max_side=ANNOTATE_MAX_SIDE) as sampled:
            for frame in sampled:  # boxes are in the upright display size the analysis saw
                scale = frame.image.shape[1] / sampled.info.width
                yield _draw(frame.image, faces_by_sample.get(frame.sample_index, []), scale)
                count += 1

    write_video(annotated(), target, out_fps)
    return count


def _draw(image: np.ndarray, faces: list[AnnotatedFace], scale: float) -> np.ndarray:
    image = np.array(image)
    height, width = image.shape[:2]

    def scaled(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        return max(0, min(x0, width - 1)), max(0, min(y0, height - 1)), max(1, min(x1, width)), max(1, min(y1, height))

    for face in faces:
        x0, y0, x1, y1 = scaled(face.crop_box)
        if face.heatmap is not None and x1 > x0 and y1 > y0:
            image[y0:y1, x0:x1] = overlay(image[y0:y1, x0:x1], np.asarray(face.heatmap, dtype=np.float32), face.strength)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, round(height / 40)))
    for face in faces:
        box = scaled(face.box)
        colour = (230, 30, 30) if face.fake else (40, 200, 60)
        draw.rectangle(box, outline=colour, width=max(2, round(height / 300)))
        draw.text((box[0], max(0, box[1] - font.size - 4)), face.caption, fill=colour, font=font)
    return np.asarray(canvas)
