"""The public types of ``analyze``: :class:`AnalyzeOptions` (a run's knobs, validated on
construction) and :class:`RunSummary` (what a run produced)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.inputs import SkippedEntry
from ..data.media import DEFAULT_MAX_PIXELS
from ..data.video import DEFAULT_FRAMES
from ..device import AMP_MODES
from .results import ResultRow

SAVE_MAPS = ("none", "panel", "all")
AGGREGATES = {"mean": "track-mean-then-max", "median": "track-median-then-max", "topk": "track-topk-then-max"}
"""``--aggregate`` choices and the method names :func:`~..metrics.video.aggregate_videos` takes."""


@dataclass(frozen=True)
class AnalyzeOptions:
    """The knobs of a run (DESIGN.md): validated on construction."""

    batch_size: int = 16
    workers: int = 0
    device: str = "auto"
    cam: bool = True
    save_maps: str = "panel"
    threshold: float | None = None
    face_detect: bool = True
    fail_on_no_face: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool | None = None
    """None: a progress bar only when stderr is a terminal."""
    frames: int = DEFAULT_FRAMES
    """Video frames sampled uniformly over the duration (``fps`` replaces it when given)."""
    fps: float | None = None
    """Sample videos every 1/fps seconds instead (long videos are streamed in chunks)."""
    aggregate: str = "mean"
    """Per-track reduction of frame scores: mean, median or topk (the mean of the ``topk`` highest)."""
    topk: int = 3
    annotate: bool = False
    """Also write each video's sampled frames with the heatmaps drawn on the faces (``annotated/``)."""
    temporal_head: bool = False
    """Score video tracks with the checkpoint's temporal-attention head (error when it has none)."""
    consistency_threshold: float = 0.5
    """Video frames whose attention map correlates less than this with the track's previous frame are marked."""
    amp: str = "auto"
    """Mixed precision of the model: auto (bf16 or fp16 on CUDA, off on CPU), off, bf16, fp16; Grad-CAM++ maths stays fp32.
    Ignored when ``analyze`` gets a loaded Detector (its own setting applies)."""
    compile: bool = False
    """``torch.compile`` the scoring forward (used with ``cam=False``); ignored for a loaded Detector."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.save_maps not in SAVE_MAPS:
            raise ValueError(f"save_maps must be one of {SAVE_MAPS}, got {self.save_maps!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"frames must be a whole number >= 1, got {self.frames!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and 0 < self.fps < float("inf")):
            raise ValueError(f"fps must be a positive number of frames per second, got {self.fps!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {tuple(AGGREGATES)}, got {self.aggregate!r}")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")
        if not -1.0 <= self.consistency_threshold <= 1.0:
            raise ValueError(f"consistency_threshold is a correlation in [-1, 1], got {self.consistency_threshold}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")


@dataclass
class RunSummary:
    """What a run produced: its rows (in input order), status counts, exit code and files.

    On rank 0 (and in a single process) ``rows`` are all the run's rows; on other ranks only the rows
    this rank analysed, while ``counts`` and ``exit_code`` are always the whole run's."""

    out_dir: Path
    rows: list[ResultRow]
    counts: dict[str, int]
    skipped: list[str]
    """Entries of the input folders that are not inputs, written as row paths are (``run.json`` ``skipped_files``)."""
    exit_code: int
    report: Path
    untrained: bool = False
    rank: int = 0
    world_size: int = 1
    resumed_rows: int = 0
    """Rows taken over from an interrupted run (``resume``)."""
    data_wait_fraction: float = 0.0
    """Share of the model loop's time spent waiting for the DataLoader, over all ranks of this attempt,
    from the first message to the last (worker start-up and exit are in ``run.json`` timings)."""
    skipped_entries: list[SkippedEntry] = field(default_factory=list)
    """The same entries with the reason each was passed over (``run.json`` ``skipped``)."""
