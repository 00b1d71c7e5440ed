"""From per-frame face scores to one score per video.

Input rows are ``(video_id, track_id, frame_index, prob)``: one per face per sampled frame,
``prob`` being the face's calibrated P(fake). Methods (a name says the order of the two steps):

- ``"track-mean-then-max"`` (DESIGN.md's rule, the default): per face track, the mean of its
  frames' probabilities; the video's value is the max over its tracks. One manipulated face
  in a group video makes the video fake, and a single noisy frame does not.
- ``"track-median-then-max"`` / ``"track-topk-then-max"``: the same with the per-track median,
  or the mean of the track's ``k`` highest frame probabilities (all of them if it has fewer).
- ``"frame-max-then-mean"``: per frame, the max over its faces; then the mean over frames.
  Frames are keyed by ``frame_index`` within a video.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Iterable

import numpy as np

VIDEO_METHODS = ("track-mean-then-max", "track-median-then-max", "track-topk-then-max", "frame-max-then-mean")
DEFAULT_VIDEO_METHOD = "track-mean-then-max"
Row = tuple[Hashable, Hashable, int, float]


def _reduce_track(probs: list[float], method: str, k: int) -> float:
    values = np.asarray(probs, dtype=np.float64)
    if method == "track-mean-then-max":
        return float(values.mean())
    if method == "track-median-then-max":
        return float(np.median(values))
    return float(np.sort(values)[::-1][:k].mean())


def aggregate_videos(rows: Iterable[Row], method: str = DEFAULT_VIDEO_METHOD, *, k: int = 3) -> dict[Hashable, float]:
    """One score per video, ``{video_id: score}`` in sorted video order (see the module docstring).

    ``k`` is used by ``"track-topk-then-max"`` only. Raises ``ValueError`` for an unknown
    method, a malformed row, a non-finite probability, or the same (video, track, frame) twice.
    """
    if method not in VIDEO_METHODS:
        raise ValueError(f"unknown video aggregation {method!r}; choose one of {VIDEO_METHODS}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    tracks: dict[Hashable, dict[Hashable, list[float]]] = defaultdict(lambda: defaultdict(list))
    frames: dict[Hashable, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen: set[tuple[Hashable, Hashable, int]] = set()
    for n, row in enumerate(rows):
        if len(row) != 4:
            raise ValueError(f"row {n} has {len(row)} fields; expected (video_id, track_id, frame_index, prob)")
        video, track, frame, prob = row
        prob = float(prob)
        if not np.isfinite(prob):
            raise ValueError(f"row {n} ({video!r}, track {track!r}, frame {frame}) has a non-finite probability {prob}")
        key = (video, track, int(frame))
        if key in seen:
            raise ValueError(f"row {n} repeats video {video!r}, track {track!r}, frame {frame}; each face appears once per frame")
        seen.add(key)
        tracks[video][track].append(prob)
        frames[video][int(frame)].append(prob)
    result: dict[Hashable, float] = {}
    for video in sorted(tracks, key=lambda v: (type(v).__name__, v)):
        if method == "frame-max-then-mean":
            result[video] = float(np.mean([max(values) for values in frames[video].values()]))
        else:
            result[video] = max(_reduce_track(values, method, k) for values in tracks[video].values())
    return result


def video_arrays(rows: Iterable[Row], labels: dict[Hashable, int], method: str = DEFAULT_VIDEO_METHOD, *, k: int = 3) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """``(video_ids, y, scores)`` aligned for the classification metrics.

    ``labels`` maps each video id to 0 (real) / 1 (fake); a scored video without a label, or a
    labelled video without any row, is a ``ValueError`` (never silently dropped).
    """
    scores = aggregate_videos(rows, method, k=k)
    missing_label = [v for v in scores if v not in labels]
    missing_rows = [v for v in labels if v not in scores]
    if missing_label or missing_rows:
        raise ValueError(f"videos without a label: {missing_label[:5]}; labelled videos without any face row: {missing_rows[:5]}")
    ids = list(scores)
    return ids, np.array([int(labels[v]) for v in ids], dtype=np.int64), np.array([scores[v] for v in ids])
