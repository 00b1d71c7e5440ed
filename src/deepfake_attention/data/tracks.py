"""Face tracks: per-frame face boxes linked across a video's sampled frames by box overlap.

Rules (deterministic: the same boxes always give the same tracks and ids):

1. Frames are processed in order. A track is *open* at sampled frame ``s`` when its last face was
   at frame ``s - 1 - g`` with ``g <= max_gap`` missing frames in between; older tracks are closed.
2. Each open track predicts its box at ``s``: with ``predict_motion``, its last box moved on by
   its last per-frame displacement (constant velocity, each coordinate); otherwise its last box.
   A face and an open track may link when ``IoU >= iou_threshold`` with the predicted box or
   with the last box (whichever is larger); the prediction keeps two faces whose paths cross
   apart, the last box covers a face that stopped moving.
3. Links are chosen greedily: highest IoU first; ties go to the track seen most recently, then
   the older track, then the lower detection index. Each face joins at most one track and each
   track takes at most one face per frame.
4. A face left unlinked starts a new track.
5. Tracks are numbered by first appearance (sampled frame), then by the left edge of their first
   box, then top edge: ids 0, 1, ... Tracks with fewer than ``min_length`` faces are returned
   apart in ``discarded`` (numbered after the kept ones), never silently dropped.
6. Frames with no face at all are listed in ``frames_without_faces``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels, x0 < x1 and y0 < y1."""


@dataclass(frozen=True)
class TrackConfig:
    """How faces are linked; see the module's rules."""

    iou_threshold: float = 0.3
    max_gap: int = 2  # sampled frames a face may be missing from without ending its track
    predict_motion: bool = True
    min_length: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.iou_threshold, (int, float)) and 0.0 < self.iou_threshold <= 1.0):
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) or self.max_gap < 0:
            raise ValueError(f"max_gap must be a whole number of frames >= 0, got {self.max_gap!r}")
        if isinstance(self.min_length, bool) or not isinstance(self.min_length, int) or self.min_length < 1:
            raise ValueError(f"min_length must be a whole number of faces >= 1, got {self.min_length!r}")


@dataclass(frozen=True)
class Track:
    """One person: ``members`` are ``(sample_index, detection_index)`` pairs in frame order."""

    track_id: int
    members: tuple[tuple[int, int], ...]
    boxes: tuple[Box, ...]

    def __len__(self) -> int:
        return len(self.members)

    @property
    def sample_indices(self) -> tuple[int, ...]:
        """The sampled frames this track has a face in."""
        return tuple(sample for sample, _ in self.members)

    @property
    def first_sample(self) -> int:
        return self.members[0][0]

    @property
    def last_sample(self) -> int:
        return self.members[-1][0]

    def items(self, detections: Sequence[Sequence[Any]]) -> list[Any]:
        """This track's entries of ``detections`` (the list given to :func:`link_tracks`), in order."""
        return [detections[sample][index] for sample, index in self.members]


@dataclass(frozen=True)
class TrackSet:
    """The tracks of one video, and the frames where no face was found."""

    tracks: tuple[Track, ...]
    frames: int
    frames_without_faces: tuple[int, ...]
    discarded: tuple[Track, ...] = ()

    @property
    def no_face_count(self) -> int:
        return len(self.frames_without_faces)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when they do not overlap)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _as_box(item: Any, sample: int, index: int) -> Box:
    """A detection as a box: a 4-sequence, or any object with a ``box`` attribute (e.g. FaceCrop)."""
    raw = getattr(item, "box", item)
    try:
        values = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        raise TypeError(f"detection {index} of frame {sample} is not a box (x0, y0, x1, y1) nor has a .box: {item!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[2] <= values[0] or values[3] <= values[1]:
        raise ValueError(f"detection {index} of frame {sample} is not a valid box (x0 < x1, y0 < y1, finite): {raw!r}")
    return values  # type: ignore[return-value]


@dataclass
class _Open:
    order: int  # creation order, for tie-breaks
    members: list[tuple[int, int]] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def predicted(self, sample: int, motion: bool) -> Box:
        last = self.boxes[-1]
        if not motion or len(self.boxes) < 2:
            return last
        steps = self.members[-1][0] - self.members[-2][0]
        ahead = sample - self.members[-1][0]
        moved = tuple(l + (l - p) / steps * ahead for l, p in zip(last, self.boxes[-2]))
        return moved if moved[2] > moved[0] and moved[3] > moved[1] else last  # type: ignore[return-value]


def link_tracks(detections: Sequence[Sequence[Any]], config: TrackConfig | None = None) -> TrackSet:
    """Link faces into tracks. ``detections[s]`` lists the faces found in sampled frame ``s``: boxes
    ``(x0, y0, x1, y1)`` or objects with a ``box`` attribute (their payload stays reachable through
    :meth:`Track.items`). Returns the tracks and the frames without faces; see the module's rules."""
    config = config or TrackConfig()
    tracks: list[_Open] = []
    empty: list[int] = []
    for sample, frame in enumerate(detections):
        boxes = [_as_box(item, sample, index) for index, item in enumerate(frame)]
        if not boxes:
            empty.append(sample)
            continue
        candidates = [t for t in tracks if sample - t.members[-1][0] - 1 <= config.max_gap]
        pairs = []
        for track in candidates:
            predicted, last = track.predicted(sample, config.predict_motion), track.boxes[-1]
            for index, box in enumerate(boxes):
                iou = max(box_iou(predicted, box), box_iou(last, box))
                if iou >= config.iou_threshold:
                    pairs.append((-iou, sample - track.members[-1][0], track.order, index, track))
        pairs.sort(key=lambda pair: pair[:4])
        taken_tracks: set[int] = set()
        taken_faces: set[int] = set()
        for _, _, order, index, track in pairs:
            if order in taken_tracks or index in taken_faces:
                continue
            taken_tracks.add(order)
            taken_faces.add(index)
            track.members.append((sample, index))
            track.boxes.append(boxes[index])
        for index, box in enumerate(boxes):
            if index not in taken_faces:
                tracks.append(_Open(order=len(tracks), members=[(sample, index)], boxes=[box]))
    tracks.sort(key=lambda t: (t.members[0][0], t.boxes[0][0], t.boxes[0][1], t.order))
    kept = [t for t in tracks if len(t.members) >= config.min_length]
    short = [t for t in tracks if len(t.members) < config.min_length]
    numbered = [Track(track_id=i, members=tuple(t.members), boxes=tuple(t.boxes)) for i, t in enumerate(kept + short)]
    return TrackSet(
        tracks=tuple(numbered[: len(kept)]), frames=len(detections),
        frames_without_faces=tuple(empty), discarded=tuple(numbered[len(kept) :]),
    )



@dataclass(frozen=True)
class VotePolicy:
    """Which face tracks vote in a video's score.

    A track votes when it covers at least ``min_coverage`` of the sampled frames and its mean
    detection score is at least ``min_det_score`` (None: no floor; each detector's scores have
    their own scale, see :data:`~.detectors.DET_SCORE_FLOORS`). When no track qualifies, the longest
    (ties: the lowest id) votes, and the result says so.
    """

    min_coverage: float = 0.25
    min_det_score: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be a share in [0, 1], got {self.min_coverage!r}")


@dataclass(frozen=True)
class Vote:
    """Whether one track votes, and why not when it does not."""

    used: bool
    reason: str | None


def vote(lengths: Sequence[int], mean_scores: Sequence[float | None], frames: int, policy: VotePolicy | None = None) -> tuple[list[Vote], bool]:
    """The :class:`Vote` of each track (``lengths[k]`` faces, mean detection score ``mean_scores[k]``,
    None when unknown) over a video of ``frames`` sampled frames, and whether the longest track
    votes only because no track qualified."""
    policy = policy or VotePolicy()
    if len(lengths) != len(mean_scores):
        raise ValueError(f"got {len(lengths)} track lengths but {len(mean_scores)} mean scores")
    votes = []
    for length, score in zip(lengths, mean_scores):
        reasons = []
        if frames > 0 and length / frames < policy.min_coverage:
            reasons.append(f"covers {length} of {frames} sampled frames (< {policy.min_coverage:.0%})")
        if policy.min_det_score is not None and score is not None and score < policy.min_det_score:
            reasons.append(f"mean detection score {score:.3g} < {policy.min_det_score:g}")
        votes.append(Vote(used=not reasons, reason="; ".join(reasons) or None))
    fallback = bool(votes) and not any(v.used for v in votes)
    if fallback:
        longest = max(range(len(lengths)), key=lambda k: (lengths[k], -k))
        votes[longest] = Vote(used=True, reason=f"no track qualified ({votes[longest].reason}): the longest track votes")
    return votes, fallback
