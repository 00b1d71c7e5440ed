"""Video decoding: probing, uniform sampling by time, rotation, containers, bad files, bounded memory."""

from __future__ import annotations

import gc
import os
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from deepfake_attention.data.media import MediaError
from deepfake_attention.data.video import VideoInfo, iter_sampled_frames, probe_video, sample_times
from deepfake_attention.data.video_writer import available_codec, write_video

from .conftest import REAL_VIDEOS
from .videos import PORTRAIT_PHONE_MATRIX, coded_frame, damage, frames, make_audio_only, make_noise_video, make_raw, make_video, read_index, shown_index


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def info(duration: float, frame_count: int = 0) -> VideoInfo:
    return VideoInfo(duration_s=duration, frame_count=frame_count, frame_count_estimated=False, fps=25.0,
                     width=64, height=48, rotation=0, codec="h264", has_audio=False, container="mp4")


@pytest.fixture(scope="module")
def plain_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "plain.mp4", 50, fps=25)


def test_probe_plain_mp4(plain_mp4: Path) -> None:
    got = probe_video(plain_mp4)
    assert (got.duration_s, got.frame_count, got.frame_count_estimated, got.fps) == (2.0, 50, False, 25.0)
    assert (got.width, got.height, got.rotation, got.has_audio) == (160, 120, 0, False)
    assert got.codec == "h264" and got.container.startswith("mov,mp4")


def test_sample_times_by_hand() -> None:
    assert sample_times(info(2.0, 50), frames=8) == pytest.approx([(i + 0.5) * 0.25 for i in range(8)])
    assert len(sample_times(info(2.0, 50), frames=100)) == 50  # never more samples than frames
    assert sample_times(info(2.0), frames=4) == pytest.approx([0.25, 0.75, 1.25, 1.75])  # count unknown
    assert sample_times(info(2.0, 50), fps=4) == pytest.approx([k / 4 for k in range(8)])
    assert sample_times(info(2.1, 50), fps=1) == pytest.approx([0.0, 1.0, 2.0])
    assert sample_times(info(0.0), frames=32) == (0.0,)


@pytest.mark.parametrize("kwargs, message", [({"frames": 0}, "frames must be a positive integer"),
                                             ({"frames": 2.5}, "frames must be a positive integer"),
                                             ({"fps": -1.0}, "fps must be a positive number"),
                                             ({"fps": float("inf")}, "fps must be a positive number")])
def test_sample_times_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_times(info(2.0, 50), **kwargs)


def test_sampled_frames_are_the_encoded_frames_nearest_each_time(plain_mp4: Path) -> None:
    reader = iter_sampled_frames(plain_mp4, frames=10)
    got = list(reader)
    frame_times = [i / 25 for i in range(50)]
    assert [f.sample_index for f in got] == list(range(10))
    assert [f.target_s for f in got] == pytest.approx([(i + 0.5) * 0.2 for i in range(10)])
    for frame in got:
        index = read_index(frame.image)
        assert index == shown_index(frame_times, frame.target_s) == frame.frame_index
        assert frame.time_s == pytest.approx(index / 25)
        assert frame.image.dtype == np.uint8 and frame.image.shape == (120, 160, 3)
        assert mean_abs_error(frame.image, coded_frame(index)) < 3  # colours and orientation as encoded
    assert np.all(np.diff([f.time_s for f in got]) > 0)
    report = reader.report
    assert (report.frames_requested, report.frames_decoded, report.ok, report.message) == (10, 10, True, "")


def test_every_frame_when_asking_for_more_than_there_are(plain_mp4: Path) -> None:
    indices = [read_index(f.image) for f in iter_sampled_frames(plain_mp4, frames=500)]
    assert indices == list(range(50))


def test_fps_sampling(plain_mp4: Path) -> None:
    got = list(iter_sampled_frames(plain_mp4, fps=5))
    assert [read_index(f.image) for f in got] == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".avi", ".mov"])
def test_other_containers(tmp_path: Path, suffix: str) -> None:
    if available_codec(suffix) is None:
        pytest.skip(f"this FFmpeg build has no encoder for {suffix}")
    path = make_video(tmp_path / f"clip{suffix}", 50)
    got = probe_video(path)
    assert got.frame_count == 50 and got.duration_s == pytest.approx(2.0) and got.fps == pytest.approx(25.0)
    assert got.frame_count_estimated == (suffix in {".mkv", ".webm"})  # Matroska stores no frame count
    for frame in iter_sampled_frames(path, frames=8):
        index = read_index(frame.image)
        assert index == shown_index([i / 25 for i in range(50)], frame.target_s)
        assert mean_abs_error(frame.image, coded_frame(index)) < 8


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_follows_time_not_index(tmp_path: Path, suffix: str) -> None:
    times = [0.02 * i for i in range(15)] + [0.8, 1.3, 1.8, 2.3, 2.8]  # dense start, then sparse
    path = make_video(tmp_path / f"vfr{suffix}", len(times), times_s=times)
    got_info = probe_video(path)
    assert got_info.duration_s == pytest.approx(2.84, abs=0.05)
    reader = iter_sampled_frames(path, frames=5)
    got = list(reader)
    indices = [read_index(f.image) for f in got]
    assert indices == [shown_index(times, t) for t in sample_times(got_info, frames=5)] == [14, 15, 16, 17, 18]
    assert indices != [2, 6, 10, 14, 18]  # what evenly spaced frame *indices* would have given
    assert [f.time_s for f in got] == pytest.approx([times[i] for i in indices], abs=1e-3)
    assert reader.report.ok


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_written_by_write_video_is_undone(tmp_path: Path, rotation: int) -> None:
    turns = rotation // 90
    upright = [coded_frame(i, 96, 64, bits=8) for i in range(10)]
    path = write_video_rotated(tmp_path / "rot.mp4", [np.rot90(u, k=-turns) for u in upright], rotation)
    got = probe_video(path)
    assert got.rotation == rotation
    assert (got.width, got.height) == (96, 64)  # the upright size
    assert (got.coded_width, got.coded_height) == ((96, 64) if rotation == 180 else (64, 96))
    for frame in iter_sampled_frames(path, frames=4):
        index = read_index(frame.image, bits=8)
        assert mean_abs_error(frame.image, upright[index]) < 3


def write_video_rotated(path: Path, stored: list[np.ndarray], rotation: int) -> Path:
    write_video(stored, path, 25, rotation=rotation)
    return path


def test_phone_portrait_display_matrix(tmp_path: Path) -> None:
    # A phone held upright stores landscape frames and a matrix meaning "turn 90 degrees clockwise".
    upright = [coded_frame(i, 96, 128, bits=8) for i in range(6)]  # portrait 96 wide x 128 high
    stored = [np.ascontiguousarray(np.rot90(u, k=1)) for u in upright]  # 128 x 96, as the sensor saw it
    path = make_raw(tmp_path / "phone.mp4", stored, display_matrix=PORTRAIT_PHONE_MATRIX)
    got = probe_video(path)
    assert got.rotation == -90 and (got.width, got.height) == (96, 128)
    assert (got.coded_width, got.coded_height) == (128, 96)
    images = [f.image for f in iter_sampled_frames(path, frames=3)]
    assert all(img.shape == (128, 96, 3) for img in images)
    assert [mean_abs_error(img, upright[read_index(img, bits=8)]) < 3 for img in images] == [True] * 3
    assert read_index(images[0], bits=8) == 1  # target 0.04 s, frame 1: the code row is readable only upright


def test_non_square_pixels_are_shown_at_their_display_aspect(tmp_path: Path) -> None:
    stored = [coded_frame(i, 80, 120, bits=8)[:, ::2] for i in range(5)]  # 40 px wide, pixels twice as wide as high
    path = make_raw(tmp_path / "anamorphic.mp4", stored, sample_aspect_ratio=Fraction(2, 1))
    got = probe_video(path)
    assert (got.width, got.height, got.coded_width, got.sample_aspect_ratio) == (80, 120, 40, 2.0)
    image = next(iter_sampled_frames(path, frames=1)).image
    assert image.shape == (120, 80, 3)
    assert mean_abs_error(image, np.repeat(stored[2], 2, axis=1)) < 6


def test_max_side_downscales_keeping_aspect(plain_mp4: Path, tmp_path: Path) -> None:
    got = list(iter_sampled_frames(plain_mp4, frames=3, max_side=80))
    assert all(f.image.shape == (60, 80, 3) for f in got)
    assert [f.frame_index for f in got] == [8, 25, 41]
    rotated = write_video_rotated(tmp_path / "r.mp4", [coded_frame(i) for i in range(5)], 90)
    assert next(iter_sampled_frames(rotated, frames=1, max_side=40)).image.shape == (40, 30, 3)
    assert next(iter_sampled_frames(plain_mp4, frames=1, max_side=1000)).image.shape == (120, 160, 3)  # no upscaling


def test_seeking_over_large_gaps_gives_the_same_frames(tmp_path: Path) -> None:
    path = make_video(tmp_path / "gop.mp4", 100, options={"g": "10"})  # a keyframe every 10 frames
    sequential = iter_sampled_frames(path, frames=4, seek_gap_s=None)
    seeking = iter_sampled_frames(path, frames=4, seek_gap_s=0.5)
    a, b = list(sequential), list(seeking)
    assert [read_index(f.image) for f in a] == [read_index(f.image) for f in b] == [12, 37, 62, 87]
    assert [f.time_s for f in a] == [f.time_s for f in b]
    assert [f.frame_index for f in b] == [12, None, None, None]  # positions are unknown after a seek
    assert sequential.report.frames_read == 89 and seeking.report.frames_read < 60


def test_sampling_faster_than_the_video_returns_each_frame_once(plain_mp4: Path) -> None:
    reader = iter_sampled_frames(plain_mp4, fps=50)  # 100 times over 50 frames
    assert [read_index(f.image) for f in reader] == list(range(50))
    report = reader.report
    assert (report.frames_requested, report.duplicates_skipped, report.ok) == (100, 50, True)
    assert report.message == ("50 sampled time(s) fell on a frame already returned (frames are sparse there); "
                              "50 of 100 sampled frames returned")


def test_closing_early(plain_mp4: Path) -> None:
    with iter_sampled_frames(plain_mp4, frames=10) as reader:
        first = next(reader)
    assert read_index(first.image) == 2  # target 0.1 s: frame 2 (0.08 s) is on screen
    with pytest.raises(StopIteration):
        next(reader)


def test_video_with_audio(tmp_path: Path) -> None:
    path = make_noise_video(tmp_path / "av.mp4", 25, audio=True)
    got = probe_video(path)
    assert got.has_audio and got.frame_count == 25
    assert len(list(iter_sampled_frames(path, frames=5))) == 5


def test_real_videos() -> None:
    videos = {"ffpp_original_004.mp4": 309, "ffpp_original_634.mp4": 338}
    if not all((REAL_VIDEOS / name).is_file() for name in videos):
        pytest.skip(f"the shared real videos are not in {REAL_VIDEOS}")
    for name, count in videos.items():
        got = probe_video(REAL_VIDEOS / name)
        assert (got.frame_count, got.fps, got.width, got.height, got.rotation) == (count, 25.0, 1280, 720, 0)
        assert got.duration_s == pytest.approx(count / 25)
        reader = iter_sampled_frames(REAL_VIDEOS / name, frames=32)
        sampled = list(reader)
        assert len(sampled) == 32 and reader.report.ok
        assert [f.target_s for f in sampled] == pytest.approx([(i + 0.5) * count / 25 / 32 for i in range(32)])
        for frame in sampled:
            assert frame.time_s <= frame.target_s < frame.time_s + 1 / 25  # the frame on screen then
            assert frame.frame_index == round(frame.time_s * 25) and frame.image.shape == (720, 1280, 3)
        assert np.all(np.diff([f.time_s for f in sampled]) > 0)


# ---- bad files: each one a MediaError with a sentence, or frames plus a report ----


def test_missing_empty_directory_and_text(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("these are meeting notes, not a video\n" * 20)
    cases = [(tmp_path / "missing.mp4", "file not found"), (tmp_path / "empty.mp4", r"the file is empty \(0 bytes\)"),
             (tmp_path, "this is a directory, not a file"), (tmp_path / "notes.mp4", "not a recognised video format")]
    for path, message in cases:
        with pytest.raises(MediaError, match=message):
            probe_video(path)
        with pytest.raises(MediaError, match=message):
            iter_sampled_frames(path)


@pytest.mark.parametrize("name", ["sound.m4a", "sound.mka"])
def test_audio_only(tmp_path: Path, name: str) -> None:
    path = make_audio_only(tmp_path / name)
    with pytest.raises(MediaError, match=r"the file has no video stream \(it holds only audio\)"):
        iter_sampled_frames(path)


def test_mp4_cut_before_its_index(tmp_path: Path) -> None:
    path = make_noise_video(tmp_path / "whole.mp4", moov_at_end=True)  # the index (moov) is written last
    cut = damage(path, tmp_path / "cut.mp4", keep=0.5)
    with pytest.raises(MediaError, match="the video container is damaged or truncated and cannot be opened"):
        probe_video(cut)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_truncated_video_returns_what_decodes(tmp_path: Path, suffix: str) -> None:
    path = make_noise_video(tmp_path / f"whole{suffix}", 75)  # mp4 index first (faststart): it stays readable
    cut = damage(path, tmp_path / f"cut{suffix}", keep=0.5)
    reader = iter_sampled_frames(cut, frames=32)
    got = list(reader)
    report = reader.report
    assert 8 <= len(got) < 32 and report.frames_decoded == len(got) and report.truncated and not report.ok
    assert "the video ends early: frames decode up to" in report.message and "of the stated 3.00 s" in report.message
    assert report.message.endswith(f"{len(got)} of 32 sampled frames returned")
    assert max(f.time_s for f in got) < 2.0


def test_garbage_in_the_middle(tmp_path: Path) -> None:
    path = make_noise_video(tmp_path / "whole.mp4", 75)
    broken = damage(path, tmp_path / "broken.mp4", garbage_at=0.5)
    reader = iter_sampled_frames(broken, frames=32)
    got = list(reader)
    assert len(got) >= 24 and not reader.report.ok and reader.report.decode_errors > 0
    assert "damaged packet(s) could not be decoded (Invalid data found when processing input)" in reader.report.message


def test_nothing_decodes(tmp_path: Path) -> None:
    path = make_noise_video(tmp_path / "whole.mkv", 75)
    ruined = damage(path, tmp_path / "ruined.mkv", garbage_at=0.01, garbage_bytes=10**6)
    with pytest.raises(MediaError, match="no frame of the video could be decoded"):
        list(iter_sampled_frames(ruined))


def test_absurd_dimensions_and_arguments(plain_mp4: Path) -> None:
    with pytest.raises(MediaError, match=r"video is 160x120 pixels, above the limit of 100 px per side; raise max_dimension"):
        iter_sampled_frames(plain_mp4, max_dimension=100)
    with pytest.raises(ValueError, match="max_side must be a positive number of pixels"):
        iter_sampled_frames(plain_mp4, max_side=0)
    with pytest.raises(ValueError, match="seek_gap_s must be positive seconds or None"):
        iter_sampled_frames(plain_mp4, seek_gap_s=0)


# ---- memory stays bounded whatever the length ----


def live_decoded_frames() -> int:
    return sum(type(o) is av.VideoFrame for o in gc.get_objects())


def test_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    short = make_video(tmp_path / "short.mp4", 100, width=96, height=64, bits=11)
    long = make_video(tmp_path / "long.mp4", 2000, width=96, height=64, bits=11)  # 80 s
    live, peaks = {}, {}
    for name, path in (("short", short), ("long", long)):
        gc.collect()
        before = live_decoded_frames()
        reader = iter_sampled_frames(path, frames=16)
        live[name] = max(live_decoded_frames() for _ in reader) - before  # decoded frames alive while iterating
        tracemalloc.start()
        for frame in iter_sampled_frames(path, frames=16):
            assert frame.image.shape == (64, 96, 3)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    frame_bytes = 96 * 64 * 3
    # Alive: the previous and current frame, plus what FFmpeg's frame threads hold at the flush.
    assert live["long"] <= max(live["short"], 4) and live["long"] <= 4 + (os.cpu_count() or 1)
    # Python-side allocations do not grow either (images themselves live in FFmpeg buffers, counted above).
    assert peaks["long"] <= peaks["short"] + 8 * frame_bytes, peaks
    indices = [read_index(f.image, bits=11) for f in iter_sampled_frames(long, frames=16)]
    assert indices == [shown_index([i / 25 for i in range(2000)], (k + 0.5) * 5) for k in range(16)]


# ---- writing ----


def test_write_video_odd_size_and_errors(tmp_path: Path) -> None:
    write_video(frames(5, 63, 47, bits=7), tmp_path / "odd.mp4", 10)
    got = probe_video(tmp_path / "odd.mp4")
    assert (got.width, got.height, got.frame_count, got.fps) == (64, 48, 5, 10.0)  # padded by one row/column
    bad = [coded_frame(0), coded_frame(1), coded_frame(2, 96, 64, 8)]
    with pytest.raises(ValueError, match="frame 2 is 96x64 but the first frame is 160x120"):
        write_video(bad, tmp_path / "bad.mp4", 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]  # nothing half-written left behind
    with pytest.raises(TypeError, match="frame 0 must be an RGB uint8 array"):
        write_video([np.zeros((8, 8, 3), np.float32)], tmp_path / "f.mp4", 25)
    with pytest.raises(ValueError, match="no frames to write"):
        write_video([], tmp_path / "none.mp4", 25)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write_video([coded_frame(0)], tmp_path / "z.mp4", 0)
    with pytest.raises(ValueError, match="no video encoder for '.xyz' files"):
        write_video([coded_frame(0)], tmp_path / "z.xyz", 25)
    with pytest.raises(ValueError, match="times_s must increase"):
        write_video(frames(3), tmp_path / "t.mp4", 25, times_s=[0.0, 0.5, 0.5])
