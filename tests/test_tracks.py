"""Face tracks: two people, gaps, crossing paths, frames without faces, ordering and errors."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_attention.data.faces import FaceCrop
from deepfake_attention.data.tracks import TrackConfig, VotePolicy, box_iou, link_tracks, vote


def box(x: float, y: float, size: float = 60) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def test_box_iou_by_hand() -> None:
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges do not overlap
    assert box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)


def test_two_people_get_one_track_each_ordered_left_to_right() -> None:
    # Right person listed first in every frame: ids must still follow x position.
    frames = [[box(300 - 2 * s, 40), box(20 + 5 * s, 50)] for s in range(8)]
    result = link_tracks(frames)
    assert len(result.tracks) == 2 and result.no_face_count == 0 and result.frames == 8
    left, right = result.tracks
    assert (left.track_id, right.track_id) == (0, 1)
    assert left.members == tuple((s, 1) for s in range(8))
    assert right.members == tuple((s, 0) for s in range(8))
    assert [b[0] for b in left.boxes] == [20 + 5 * s for s in range(8)]


def test_ids_follow_first_appearance_before_x() -> None:
    frames = [[box(300, 40)], [box(302, 40)], [box(302, 40), box(10, 40)], [box(304, 40), box(12, 40)]]
    first, second = link_tracks(frames).tracks
    assert first.first_sample == 0 and first.boxes[0][0] == 300  # appeared first, although on the right
    assert second.first_sample == 2 and second.members == ((2, 1), (3, 1))


def test_gap_within_max_gap_keeps_the_track() -> None:
    path = [box(10 + 4 * s, 30) for s in range(10)]
    frames = [[b] if s not in (3, 4) else [] for s, b in enumerate(path)]
    result = link_tracks(frames, TrackConfig(max_gap=2))
    assert len(result.tracks) == 1
    assert result.tracks[0].sample_indices == (0, 1, 2, 5, 6, 7, 8, 9)
    assert result.frames_without_faces == (3, 4) and result.no_face_count == 2


def test_gap_longer_than_max_gap_starts_a_new_track() -> None:
    frames = [[box(10, 30)] if s not in (3, 4, 5) else [] for s in range(9)]
    result = link_tracks(frames, TrackConfig(max_gap=2))
    assert [t.sample_indices for t in result.tracks] == [(0, 1, 2), (6, 7, 8)]
    assert link_tracks(frames, TrackConfig(max_gap=3)).tracks[0].sample_indices == (0, 1, 2, 6, 7, 8)


def crossing_paths() -> list[list[tuple[float, float, float, float]]]:
    """A walks right 30 px/frame, B walks left 20 px/frame; they meet at frame 4 (same box)."""
    frames = []
    for s in range(9):
        a, b = box(30 * s, 50), box(200 - 20 * s, 50)
        frames.append([b, a] if s % 2 else [a, b])  # detection order carries no identity
    return frames


def test_crossing_paths_keep_identities_with_motion_prediction() -> None:
    result = link_tracks(crossing_paths())
    assert len(result.tracks) == 2
    a, b = result.tracks
    assert [bx[0] for bx in a.boxes] == [30 * s for s in range(9)]
    assert [bx[0] for bx in b.boxes] == [200 - 20 * s for s in range(9)]


def test_crossing_paths_swap_without_motion_prediction() -> None:
    # The reason for the prediction: on the last box alone, A's track grabs B after they meet.
    a, _ = link_tracks(crossing_paths(), TrackConfig(predict_motion=False)).tracks
    assert [bx[0] for bx in a.boxes] != [30 * s for s in range(9)]


def test_frames_without_faces_are_counted_and_listed() -> None:
    frames = [[], [box(0, 0)], [], [], [box(1, 0)], []]
    result = link_tracks(frames)
    assert result.frames_without_faces == (0, 2, 3, 5) and result.no_face_count == 4
    assert [t.sample_indices for t in result.tracks] == [(1, 4)]
    empty = link_tracks([[], []])
    assert empty.tracks == () and empty.no_face_count == 2
    assert link_tracks([]).frames == 0


def test_low_overlap_starts_a_new_track() -> None:
    frames = [[(0, 0, 10, 10)], [(7, 0, 17, 10)]]  # IoU 3/17 = 0.18 < 0.3
    assert len(link_tracks(frames).tracks) == 2
    assert len(link_tracks(frames, TrackConfig(iou_threshold=0.15)).tracks) == 1


def test_short_tracks_are_set_apart_not_dropped() -> None:
    frames = [[box(0, 0)], [box(2, 0), box(400, 400)], [box(4, 0)]]
    result = link_tracks(frames, TrackConfig(min_length=2))
    assert [t.sample_indices for t in result.tracks] == [(0, 1, 2)]
    assert [(t.track_id, t.members) for t in result.discarded] == [(1, ((1, 1),))]


def test_payload_objects_and_items() -> None:
    crops = [[FaceCrop(box=(0, 0, 10, 10), score=0.9, crop=np.zeros((10, 10, 3), np.uint8))],
             [FaceCrop(box=(1, 0, 11, 10), score=0.8, crop=np.zeros((10, 10, 3), np.uint8))]]
    (track,) = link_tracks(crops).tracks
    assert [c.score for c in track.items(crops)] == [0.9, 0.8]
    assert len(track) == 2 and track.last_sample == 1


def test_deterministic_and_independent_of_detection_order() -> None:
    rng = np.random.default_rng(np.random.SeedSequence([0, 0, 0]))
    people = [(20, 40, 3), (200, 60, -2), (110, 200, 1)]
    frames = [[box(x + v * s, y) for x, y, v in people] for s in range(12)]
    shuffled = [[f[i] for i in rng.permutation(len(f))] for f in frames]
    first, again, mixed = link_tracks(frames), link_tracks(frames), link_tracks(shuffled)
    assert first == again
    assert [t.boxes for t in first.tracks] == [t.boxes for t in mixed.tracks]
    assert [t.boxes[0][0] for t in first.tracks] == [20, 110, 200]


@pytest.mark.parametrize(
    "frames, error, message",
    [
        ([[(10, 0, 5, 10)]], ValueError, "detection 0 of frame 0 is not a valid box"),
        ([[], [(0, 0, 1, float("nan"))]], ValueError, "detection 0 of frame 1 is not a valid box"),
        ([[(0, 0, 1)]], ValueError, "not a valid box"),
        ([["face"]], TypeError, "is not a box"),
    ],
)
def test_bad_boxes(frames: list, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        link_tracks(frames)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"iou_threshold": 0.0}, "iou_threshold must be in"), ({"iou_threshold": 1.5}, "iou_threshold must be in"),
     ({"max_gap": -1}, "max_gap must be"), ({"max_gap": 1.5}, "max_gap must be"), ({"min_length": 0}, "min_length must be")],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackConfig(**kwargs)


def test_vote_drops_short_and_unsure_tracks_and_says_why() -> None:
    votes, fallback = vote([32, 3, 20], [0.99, 0.98, 0.5], 32, VotePolicy(min_coverage=0.25, min_det_score=0.9))
    assert [v.used for v in votes] == [True, False, False] and not fallback
    assert votes[0].reason is None
    assert "covers 3 of 32 sampled frames" in votes[1].reason
    assert "mean detection score 0.5 < 0.9" in votes[2].reason


def test_vote_falls_back_to_the_longest_track() -> None:
    votes, fallback = vote([2, 5, 5], [None, None, None], 40, VotePolicy(min_coverage=0.25))
    assert fallback and [v.used for v in votes] == [False, True, False]
    assert votes[1].reason.endswith("the longest track votes")
    assert vote([], [], 10) == ([], False)
    with pytest.raises(ValueError, match="min_coverage"):
        VotePolicy(min_coverage=1.5)
    with pytest.raises(ValueError, match="mean scores"):
        vote([1, 2], [None], 4)
