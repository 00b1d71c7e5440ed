"""``analyze`` on videos: sampled frames with PTS times, face tracks, aggregation, consistency,
no-face / damaged files, order among images, chunked streaming, rendering and --annotate.

The videos are made here with PyAV: a real face (``skimage.data.astronaut()``) pasted on a static
textured background, so OpenCV's Haar cascade finds it; the checkpoint is a tiny seed model with
``detector="haar"``. Where a test needs known scores or maps, the detector's ``predict`` is wrapped
to set them from the crop (the pipeline is what is under test, not the untrained model).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deepfake_attention import Detector, analyze
from deepfake_attention.analysis.results import read_results
from deepfake_attention.checkpoint import save_temporal_head
from deepfake_attention.data.video import iter_sampled_frames, probe_video
from deepfake_attention.data.video_writer import write_video
from deepfake_attention.model.temporal import TemporalAttentionPooling

from .conftest import make_checkpoint, write_image
from .videos import damage, make_audio_only

_ASTRONAUT = skimage.data.astronaut()[37:190, 147:300]  # the face with a margin (Haar box 177,67,270,160)
_BACKGROUND = np.random.default_rng(0).integers(60, 160, size=(200, 400, 3), dtype=np.uint8)


def face(side: int, tint: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    image = np.asarray(Image.fromarray(_ASTRONAUT).resize((side, side), Image.BILINEAR)).astype(np.int16)
    return np.clip(image + np.array(tint, dtype=np.int16), 0, 255).astype(np.uint8)


def face_frames(count: int, *, width: int = 160, height: int = 128, faces: tuple[tuple[int, int], ...] = ((30, 16),), side: int = 96,
                tints: tuple[tuple[int, int, int], ...] = ((0, 0, 0),), visible: range | None = None):
    """Frames with ``faces`` at (x, y) moving by up to 2 px; faces drawn only in ``visible`` frames."""
    pictures = [face(side, tint) for tint in tints]
    for i in range(count):
        image = np.array(_BACKGROUND[:height, :width])
        if visible is None or i in visible:
            dx = round(2 * np.sin(i / 2))
            for k, (x, y) in enumerate(faces):
                image[y : y + side, x + dx : x + dx + side] = pictures[k % len(pictures)]
        yield image


def one_face_video(path: Path, count: int = 10, options: dict[str, str] | None = None, **kwargs) -> Path:
    write_video(face_frames(count, **kwargs), path, 10, options=options)
    return path


def two_face_video(path: Path, count: int = 10) -> Path:
    # the right person is tinted red: the wrapped predict below scores it as more fake
    write_video(face_frames(count, width=320, height=160, faces=((20, 24), (190, 24)), side=112, tints=((0, 0, 0), (60, -20, -20))), path, 10)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "haar", detector="haar", size=32)


def redness_detector(checkpoint: Path) -> Detector:
    """The tiny model, with P(fake) set to the crop's mean red share (a known, face-dependent score)."""
    detector = Detector.load(checkpoint, device="cpu")
    predict = detector.predict

    def scored(crops, *, cam=True):
        return [dataclasses.replace(p, prob_fake=float(c[..., 0].mean() / (c.astype(float).sum(axis=2).mean() + 1e-9)))
                for c, p in zip(crops, predict(crops, cam=cam))]

    detector.predict = scored
    return detector


def test_two_faces_two_tracks_and_max_of_track_means(checkpoint: Path, tmp_path: Path) -> None:
    video = two_face_video(tmp_path / "pair.mp4")
    out = tmp_path / "out"
    summary = analyze([video], out, model=redness_detector(checkpoint), frames=6, progress=False)
    row = summary.rows[0]
    assert (row.kind, row.status, row.faces) == ("video", "ok", 2)
    data = read_results(out)[0]
    frames, tracks = data["frames"], data["tracks"]
    assert len(frames) == 6 and data["frames_without_face"] == 0 and data["warning"] is None
    # times come from PTS: 10 fps, 6 samples at the centres of 6 equal parts of 1 s -> the frame on screen then
    assert [f["time_s"] for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.5, 0.7, 0.9])
    assert [f["frame_index"] for f in frames] == [0, 2, 4, 5, 7, 9]
    assert all(len(f["faces"]) == 2 for f in frames)
    assert [t["track_id"] for t in tracks] == [0, 1] and [t["frames"] for t in tracks] == [6, 6]
    for f in frames:  # track 0 is the left person, track 1 the right one, in every frame
        left, right = sorted(f["faces"], key=lambda e: e["box"][0])
        assert (left["track_id"], right["track_id"]) == (0, 1)
    for track in tracks:
        probs = [e["prob_fake"] for f in frames for e in f["faces"] if e["track_id"] == track["track_id"]]
        assert track["prob_mean"] == pytest.approx(np.mean(probs)) and track["prob_median"] == pytest.approx(np.median(probs))
        assert track["prob_topk"] == pytest.approx(np.mean(sorted(probs)[-3:])) and track["prob_fake"] == track["prob_mean"]
    assert tracks[1]["prob_mean"] > tracks[0]["prob_mean"] + 0.05  # the red person
    assert row.prob_fake == pytest.approx(max(t["prob_mean"] for t in tracks))
    assert row.label == ("fake" if row.prob_fake >= row.threshold else "real")
    assert [d["face_index"] for d in data["detections"]] == [0, 1]
    assert data["detections"][1]["prob_fake"] == pytest.approx(tracks[1]["prob_mean"])
    assert (out / data["panel"]).is_file() and (out / data["timeline_png"]).is_file()
    assert Image.open(out / data["timeline_png"]).size[0] >= 800
    assert len((out / "faces.csv").read_text().strip().splitlines()) == 3
    html = (out / "report.html").read_text()
    assert data["timeline_png"] in html and "2 face track(s)" in html
    median = analyze([video], tmp_path / "median", model=redness_detector(checkpoint), frames=6, aggregate="median", save_maps="none", progress=False)
    assert median.rows[0].prob_fake == pytest.approx(max(t["prob_median"] for t in tracks))
    assert median.rows[0].panel is None and median.rows[0].extra["timeline_png"] is None


def test_frames_without_face_are_counted_and_no_face_video(checkpoint: Path, tmp_path: Path) -> None:
    partly = one_face_video(tmp_path / "partly.mp4", visible=range(0, 5))
    empty = tmp_path / "empty.mp4"
    write_video(face_frames(6, visible=range(0)), empty, 10)
    summary = analyze([partly, empty], tmp_path / "out", model=checkpoint, device="cpu", frames=10, progress=False)
    part, none = summary.rows
    assert part.status == "ok" and part.extra["frames_without_face"] == 5
    assert [len(f["faces"]) for f in part.extra["frames"]] == [1] * 5 + [0] * 5
    assert part.extra["tracks"][0]["frames"] == 5
    assert none.status == "no_face" and none.prob_fake is None and none.label is None
    assert none.error == "no face was found in any of the 6 sampled frames" and none.extra["frames_without_face"] == 6
    assert summary.counts == {"ok": 1, "no_face": 1, "error": 0} and summary.exit_code == 0
    whole = analyze([empty], tmp_path / "whole", model=checkpoint, device="cpu", frames=3, face_detect=False, save_maps="none", progress=False).rows[0]
    assert whole.status == "ok" and whole.faces == 1 and whole.detections[0].box == (0, 0, 160, 128)  # --no-face-detect: the frame
    assert analyze([empty], tmp_path / "strict", model=checkpoint, device="cpu", frames=3, fail_on_no_face=True, progress=False).exit_code == 1


def test_rotated_video_is_analyzed_upright(checkpoint: Path, tmp_path: Path) -> None:
    upright = list(face_frames(6, width=128, height=160, faces=((16, 30),)))  # portrait
    stored = [np.ascontiguousarray(np.rot90(image, k=-1)) for image in upright]  # what a phone stores: turned
    video = tmp_path / "phone.mp4"
    write_video(stored, video, 10, rotation=90)
    assert probe_video(video).rotation == 90
    row = analyze([video], tmp_path / "out", model=checkpoint, device="cpu", frames=4, progress=False).rows[0]
    assert row.status == "ok" and row.extra["video"]["width"] == 128 and row.extra["video"]["height"] == 160
    x0, y0, x1, y1 = row.detections[0].box
    assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 160 and abs((x0 + x1) / 2 - 64) < 12  # the face, upright coordinates


def test_damaged_files_become_error_rows(checkpoint: Path, tmp_path: Path) -> None:
    good = one_face_video(tmp_path / "good.mp4", count=30, options={"g": "4"})  # keyframes all along: a cut keeps some
    folder = tmp_path / "in"
    folder.mkdir()
    damage(good, folder / "a_header.mp4", garbage_at=0.0, garbage_bytes=64)
    (folder / "b_zero.mp4").write_bytes(b"")
    make_audio_only(folder / "c_audio.mkv")
    (folder / "d_text.mp4").write_text("this is not a video")
    damage(good, folder / "e_cut.mp4", keep=0.6)
    summary = analyze([folder], tmp_path / "out", model=checkpoint, device="cpu", frames=8, progress=False)
    rows = {Path(r.path).name: r for r in summary.rows}
    assert rows["a_header.mp4"].status == "error" and "not a recognised video format" in rows["a_header.mp4"].error
    assert rows["b_zero.mp4"].error == "the file is empty (0 bytes)"
    assert "no video stream (it holds only audio)" in rows["c_audio.mkv"].error
    assert "not a recognised video format" in rows["d_text.mp4"].error
    for name in ("a_header.mp4", "b_zero.mp4", "c_audio.mkv", "d_text.mp4"):
        assert rows[name].kind == "video" and rows[name].prob_fake is None and rows[name].label is None
    cut = rows["e_cut.mp4"]  # decodes partly: scored on what it gave, the problem in 'warning'
    assert cut.status == "ok" and cut.prob_fake is not None
    assert "the video ends early: frames decode up to" in cut.extra["warning"]
    assert 2 <= len(cut.extra["frames"]) < 8 and cut.extra["video"]["frames_decoded"] == len(cut.extra["frames"])
    assert summary.exit_code == 1 and summary.counts["error"] == 4


def test_mixed_folder_keeps_order_with_workers(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "a.png", np.asarray(Image.fromarray(face(96)).resize((120, 120))))
    one_face_video(folder / "b.mp4", count=8)
    write_image(folder / "c.jpg")
    (folder / "d.avi").write_bytes(b"RIFF0000AVI garbage")
    two_face_video(folder / "sub" / "e.mp4", count=6)
    inline = analyze([folder], tmp_path / "w0", model=checkpoint, device="cpu", frames=4, progress=False)
    pooled = analyze([folder], tmp_path / "w2", model=checkpoint, device="cpu", frames=4, workers=2, batch_size=3, progress=False)
    expected = ["a.png", "b.mp4", "c.jpg", "d.avi", "e.mp4"]
    assert [Path(r.path).name for r in inline.rows] == expected
    assert [(r.kind, r.status) for r in inline.rows] == [("image", "ok"), ("video", "ok"), ("image", "no_face"), ("video", "error"), ("video", "ok")]
    key = [(r.path, r.status, r.error, r.prob_fake, r.faces) for r in inline.rows]
    assert key == [(r.path, r.status, r.error, r.prob_fake, r.faces) for r in pooled.rows]
    assert [r["path"] for r in read_results(tmp_path / "w2")] == [r.path for r in inline.rows]


def test_chunks_give_the_same_row_as_one_piece(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = one_face_video(tmp_path / "long.mp4", count=20)
    whole = analyze([video], tmp_path / "a", model=checkpoint, device="cpu", fps=10, save_maps="none", progress=False).rows[0]
    monkeypatch.setattr("deepfake_attention.analysis.video_chunks.CHUNK_FRAMES", 3)
    chunked = analyze([video], tmp_path / "b", model=checkpoint, device="cpu", fps=10, save_maps="none", workers=1, progress=False).rows[0]
    assert len(whole.extra["frames"]) == 20 and whole.extra["sampling"] == {"frames": None, "fps": 10}
    assert chunked.extra["frames"] == whole.extra["frames"] and chunked.extra["tracks"] == whole.extra["tracks"]
    assert chunked.prob_fake == whole.prob_fake


def test_consistency_marks_the_odd_frame(checkpoint: Path, tmp_path: Path) -> None:
    """Attention maps are set per call: the same blob in every frame except the 4th, whose blob moved."""
    detector = Detector.load(checkpoint, device="cpu")
    predict, calls = detector.predict, []
    yy, xx = np.mgrid[0:32, 0:32]
    blob = lambda cy, cx: np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0).astype(np.float32)  # noqa: E731
    maps = [blob(10, 12)] * 3 + [blob(24, 22)] + [blob(10, 12) * 0.9 + 0.05] * 2

    def fixed(crops, *, cam=True):
        out = []
        for p in predict(crops, cam=cam):
            out.append(dataclasses.replace(p, attention=maps[len(calls)]))
            calls.append(1)
        return out

    detector.predict = fixed
    video = one_face_video(tmp_path / "v.mp4", count=6)
    row = analyze([video], tmp_path / "out", model=detector, frames=6, batch_size=1, progress=False).rows[0]
    faces = [f["faces"][0] for f in row.extra["frames"]]
    reference = [None] + [float(np.corrcoef(maps[t].ravel(), maps[t + 1].ravel())[0, 1]) for t in range(5)]
    assert [f["consistency"] for f in faces][0] is None
    assert [f["consistency"] for f in faces][1:] == pytest.approx(reference[1:], abs=1e-6)
    assert [f["low_consistency"] for f in faces] == [False, False, False, True, True, False]
    track = row.extra["tracks"][0]
    assert track["low_consistency_samples"] == [3, 4]
    assert track["consistency"]["mean"] == pytest.approx(np.mean(reference[1:])) and track["consistency"]["pairs"] == 5


def test_annotate_writes_a_playable_video(checkpoint: Path, tmp_path: Path) -> None:
    video = two_face_video(tmp_path / "pair.mp4", count=8)
    out = tmp_path / "out"
    row = analyze([video], out, model=checkpoint, device="cpu", frames=5, annotate=True, progress=False).rows[0]
    written = out / row.extra["annotated_video"]
    assert row.extra["annotated_video"].startswith("annotated/pair-") and written.suffix == ".mp4"
    info = probe_video(written)
    assert (info.width, info.height, info.frame_count) == (320, 160, 5)
    decoded = [frame.image for frame in iter_sampled_frames(written, frames=5)]
    assert len(decoded) == 5
    original = next(iter_sampled_frames(video, frames=5)).image
    box = row.extra["frames"][0]["faces"][0]["box"]
    edge = decoded[0][box[1] : box[3], box[0]].astype(int)  # the drawn box's left edge is green (real) or red (fake)
    assert np.abs(edge - original[box[1] : box[3], box[0]].astype(int)).mean() > 30


def test_temporal_head_option(checkpoint: Path, tmp_path: Path) -> None:
    video = two_face_video(tmp_path / "pair.mp4", count=6)
    with pytest.raises(ValueError, match="has no temporal head"):
        analyze([video], tmp_path / "a", model=checkpoint, device="cpu", temporal_head=True, progress=False)
    with pytest.raises(ValueError, match="needs the checkpoint folder"):
        analyze([video], tmp_path / "a", model=Detector.load(checkpoint), temporal_head=True, progress=False)
    import shutil

    headed = Path(shutil.copytree(checkpoint, tmp_path / "headed"))
    save_temporal_head(TemporalAttentionPooling(32, 8), headed)
    row = analyze([video], tmp_path / "b", model=headed, device="cpu", frames=4, temporal_head=True, save_maps="none", progress=False).rows[0]
    assert row.extra["aggregation"] == "temporal-head"
    for track in row.extra["tracks"]:
        assert sum(track["temporal"]["weights"]) == pytest.approx(1.0) and len(track["temporal"]["weights"]) == track["frames"]
        assert track["prob_fake"] == track["temporal"]["prob_fake"]
    assert row.prob_fake == pytest.approx(max(t["temporal"]["prob_fake"] for t in row.extra["tracks"]))
    assert "temporal_weight" in row.extra["frames"][0]["faces"][0]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["options"]["temporal_head"] is True


def test_options_are_validated(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aggregate must be one of"):
        analyze([], tmp_path, model=checkpoint, aggregate="max")
    with pytest.raises(ValueError, match="fps must be a positive number"):
        analyze([], tmp_path, model=checkpoint, fps=0)
    with pytest.raises(ValueError, match="frames must be a whole number"):
        analyze([], tmp_path, model=checkpoint, frames=0)
    with pytest.raises(ValueError, match="consistency_threshold is a correlation"):
        analyze([], tmp_path, model=checkpoint, consistency_threshold=2.0)


def test_score_video_matches_analyze(checkpoint: Path, tmp_path: Path) -> None:
    from deepfake_attention.analysis.video import score_video

    video = two_face_video(tmp_path / "pair.mp4", count=6)
    detector = Detector.load(checkpoint, device="cpu")
    row = score_video(video, detector, frames=4)
    ran = analyze([video], tmp_path / "out", model=detector, frames=4, cam=False, save_maps="none", progress=False).rows[0]
    assert row.prob_fake == ran.prob_fake and row.extra["tracks"] == ran.extra["tracks"] and row.extra["frames"] == ran.extra["frames"]
    assert score_video(tmp_path / "missing.mp4", detector).error == "file not found"


def test_a_passing_face_is_reported_but_does_not_vote(checkpoint: Path, tmp_path: Path) -> None:
    """A second (red, "more fake") face in 1 of 8 sampled frames: its track is listed, with why it does not vote."""
    main, red = face(112), face(112, (60, -20, -20))
    frames = []
    for i in range(8):
        image = np.array(_BACKGROUND[:160, :320])
        image[24:136, 20:132] = main
        if i == 3:
            image[24:136, 190:302] = red
        frames.append(image)
    video = tmp_path / "passer.mp4"
    write_video(frames, video, 8)
    row = analyze([video], tmp_path / "out", model=redness_detector(checkpoint), frames=8, save_maps="none", progress=False).rows[0]
    tracks = row.extra["tracks"]
    assert [t["frames"] for t in tracks] == [8, 1] and [t["used"] for t in tracks] == [True, False]
    assert tracks[0]["vote_note"] is None and "covers 1 of 8 sampled frames" in tracks[1]["vote_note"]
    assert tracks[1]["prob_fake"] > tracks[0]["prob_fake"]  # the red face would have decided the verdict
    assert row.prob_fake == pytest.approx(tracks[0]["prob_fake"])
    assert row.extra["voting"]["tracks_used"] == 1 and not row.extra["voting"]["fallback_longest"]
    assert tracks[0]["det_score_mean"] is not None and row.extra["voting"]["min_det_score"] == 3.0
