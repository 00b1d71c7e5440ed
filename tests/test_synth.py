"""Synthesized forgeries: determinism, masks that match the changed pixels, boundaries, the
dataset folder and the on-the-fly dataset."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch.utils.data import ConcatDataset, DataLoader

from deepfake_attention.crops import central_face_box
from deepfake_attention.data.datasets import HorizontalFlip, ManifestDataset
from deepfake_attention.data.face_records import read_faces
from deepfake_attention.data.faces import detect_faces
from deepfake_attention.data.landmarks import LandmarkPredictor, landmarks_available
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.data.masks import BOX_SHAPES, OTHER_SHAPES, SBI_SHAPES
from deepfake_attention.data.synth import SynthConfig, cross_blend, family_config, self_blend
from deepfake_attention.data.synth_dataset import BlendedFaceDataset
from deepfake_attention.data.synth_ops import poisson_clone
from deepfake_attention.data.synth_writer import _sample_frames, synthesize
from deepfake_attention.data.transforms import IMAGENET_MEAN, IMAGENET_STD

from .conftest import REAL_VIDEOS, write_image

NO_POST = {"jpeg_prob": 0.0, "downscale_prob": 0.0}


def template_landmarks(box: tuple[int, int, int, int]) -> np.ndarray:
    """A plausible 68-point face (iBUG order) drawn inside ``box``: jaw, brows, nose, eyes, mouth."""
    def arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int) -> np.ndarray:
        t = np.linspace(start, stop, n)
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)

    unit = np.concatenate([
        arc(0.5, 0.45, 0.45, 0.5, np.pi, 0, 17),  # jaw 0-16, left to right through the chin
        arc(0.29, 0.3, 0.13, 0.06, np.pi, 2 * np.pi, 5), arc(0.71, 0.3, 0.13, 0.06, np.pi, 2 * np.pi, 5),  # brows
        np.stack([np.full(4, 0.5), np.linspace(0.38, 0.6, 4)], 1), np.stack([np.linspace(0.42, 0.58, 5), np.full(5, 0.65)], 1),  # nose
        arc(0.3, 0.4, 0.08, 0.03, np.pi, 3 * np.pi, 7)[:6], arc(0.7, 0.4, 0.08, 0.03, np.pi, 3 * np.pi, 7)[:6],  # eyes
        arc(0.5, 0.78, 0.15, 0.06, np.pi, 3 * np.pi, 13)[:12], arc(0.5, 0.78, 0.1, 0.02, np.pi, 3 * np.pi, 9)[:8],  # mouth
    ])
    x0, y0, x1, y1 = box
    return unit * [x1 - x0, y1 - y0] + [x0, y0]


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The astronaut's face as :func:`detect_faces` crops it (1.3 x the box)."""
    return detect_faces(data.astronaut())[0].crop


def changed_outside_mask(sample, threshold: float = 0.02, dilate: int = 3) -> float:
    """Fraction of all pixels that changed (fake != real) outside the thresholded, dilated mask."""
    changed = np.any(sample.image != sample.target, axis=2)
    inside = cv2.dilate((sample.mask > threshold).astype(np.uint8), np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)) > 0
    return float(np.mean(changed & ~inside))


def assert_same(a, b) -> None:
    for name in ("image", "real", "mask", "boundary"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.params == b.params


def test_self_blend_is_a_pure_function_of_seed_and_index(face: np.ndarray) -> None:
    first = self_blend(face, 7, 3)
    others = [self_blend(face, 7, k) for k in (4, 5)]
    assert_same(first, self_blend(face, 7, 3))  # same seed and index after other calls: identical
    assert_same(self_blend(face, 7, 3, epoch=2), self_blend(face, 7, 3, epoch=2))
    donor = face[::-1].copy()
    poisson = [cross_blend(face, donor, 3, k) for k in range(4)]  # seed 3: indices 0-3 all use seamlessClone
    assert {p.params["blend"]["method"] for p in poisson} == {"poisson"}
    for k, sample in enumerate(poisson):
        assert_same(sample, cross_blend(face, donor, 3, k))
    for other in [*others, self_blend(face, 8, 3), self_blend(face, 7, 3, epoch=1)]:
        assert not np.array_equal(first.mask, other.mask)
    assert first.image.dtype == np.uint8 and first.image.shape == face.shape
    assert first.mask.dtype == first.boundary.dtype == np.float32 and first.mask.shape == face.shape[:2]
    json.loads(json.dumps(first.params))  # JSON-serialisable
    assert first.params["family"] == "sbi" and first.params["mask"]["shape"] in BOX_SHAPES


def test_poisson_clone_is_repeatable_and_stays_in_its_region(face: np.ndarray) -> None:
    region = np.zeros(face.shape[:2], np.uint8)
    cv2.ellipse(region, (60, 60), (30, 40), 0, 0, 360, 1, -1)
    region = region.astype(bool)
    donor = np.ascontiguousarray(face[::-1])
    for mixed in (False, True):
        outputs = [poisson_clone(donor, face, region, mixed=mixed) for _ in range(4)]  # seamlessClone overwrites 1-channel masks
        for output in outputs[1:]:
            np.testing.assert_array_equal(output, outputs[0])
        changed = np.any(outputs[0] != face, axis=2)
        assert not np.any(changed & ~region) and changed[region].mean() > 0.5


def _digest(face: np.ndarray) -> str:
    import hashlib

    from deepfake_attention.data.synth import cross_blend, self_blend

    parts = [self_blend(face, 3, k) for k in range(3)] + [cross_blend(face, face[::-1].copy(), 3, k) for k in range(6)]
    return hashlib.sha256(b"".join(p.image.tobytes() + p.mask.tobytes() + p.real.tobytes() for p in parts)).hexdigest()


def test_same_output_in_another_process(face: np.ndarray, tmp_path: Path) -> None:
    """Bit-identical across processes (OpenCV's seamlessClone included: it is given a 3-channel mask)."""
    np.save(tmp_path / "face.npy", face, allow_pickle=False)
    code = f"import numpy as np; from tests.test_synth import _digest; print(_digest(np.load({str(tmp_path / 'face.npy')!r})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert result.stdout.strip() == _digest(face)


@pytest.mark.parametrize("family", ["sbi", "other"])
def test_mask_covers_every_changed_pixel_without_post_processing(face: np.ndarray, family: str) -> None:
    donor = cv2.resize(np.ascontiguousarray(face[:, ::-1, ::-1]), (100, 100))  # another 'identity': mirrored, channels swapped
    config = family_config(family, **NO_POST)
    worst, methods = 0.0, set()
    for index in range(12):
        if family == "sbi":
            sample = self_blend(face, 0, index, landmarks=template_landmarks(central_face_box(face.shape)) if index % 2 else None, config=config)
        else:
            sample = cross_blend(face, donor, 0, index, config=config)
            methods.add(sample.params["blend"]["method"])
        worst = max(worst, changed_outside_mask(sample))
        assert not np.any(np.any(sample.image != sample.target, axis=2) & (sample.mask == 0))  # exact: no change where M = 0
        strong = sample.mask > 0.5 * sample.mask.max()  # the blend ratio can be 0.25
        assert 0.02 < strong.mean() < 0.8
        diff = np.abs(sample.image.astype(int) - sample.target).sum(2)
        assert diff[strong].mean() > 5 * max(diff[sample.mask == 0].mean(), 0.01)  # the change is where M is
    assert worst < 0.001, worst
    if family == "other":
        assert methods == {"poisson", "poisson_mixed", "alpha"}


def test_boundary_is_4m_1_minus_m(face: np.ndarray) -> None:
    for sample in (self_blend(face, 1, 0), cross_blend(face, face[::-1].copy(), 1, 0)):
        m = sample.mask
        np.testing.assert_array_equal(sample.boundary, np.float32(4) * m * (np.float32(1) - m))
        assert 0.0 <= m.min() and m.max() <= 1.0 and sample.boundary.max() <= 1.0
        assert np.all(sample.boundary[(m == 0) | (m == 1)] == 0)


def test_landmark_and_landmark_free_paths(face: np.ndarray) -> None:
    box = central_face_box(face.shape)
    points = template_landmarks(box)
    shapes = {self_blend(face, 0, k, landmarks=points).params["mask"]["shape"] for k in range(24)}
    assert shapes == set(SBI_SHAPES)
    assert {self_blend(face, 0, k).params["mask"]["shape"] for k in range(12)} == set(BOX_SHAPES)
    hull = self_blend(face, 0, next(k for k in range(24) if self_blend(face, 0, k, landmarks=points).params["mask"]["shape"] == "hull"), landmarks=points, config=family_config("sbi", **NO_POST))
    inside = cv2.pointPolygonTest(cv2.convexHull(points.astype(np.float32)), (float(face.shape[1] / 2), float(face.shape[0] / 2)), False)
    assert inside > 0 and hull.mask[face.shape[0] // 2, face.shape[1] // 2] > 0  # the face centre is blended
    other = [cross_blend(face, face[::-1].copy(), 0, k, target_landmarks=points, donor_landmarks=points) for k in range(9)]
    assert {s.params["align"] for s in other} == {"landmarks"} and {s.params["mask"]["shape"] for s in other} == set(OTHER_SHAPES)
    assert cross_blend(face, face, 0, 0, target_landmarks=points).params["align"] == "box"  # the donor has none


@pytest.mark.skipif(not landmarks_available(), reason="dlib or the face_recognition_models file is not installed (the landmarks extra)")
def test_self_blend_with_predicted_landmarks() -> None:
    (found,) = detect_faces(data.astronaut(), landmarks=LandmarkPredictor())
    points = found.landmarks - np.float32(found.crop_box[:2])
    sample = self_blend(found.crop, 0, 1, landmarks=points, config=family_config("sbi", **NO_POST))
    assert sample.params["mask"]["shape"] in SBI_SHAPES and changed_outside_mask(sample) < 0.001


def test_post_processing_and_validation(face: np.ndarray) -> None:
    qualities = [cross_blend(face, face[::-1].copy(), 0, k, config=family_config("other", out_size=64)).params["post"] for k in range(8)]
    assert all(50 <= q["jpeg_quality"] <= 70 and q["out_size"] == [64, 64] for q in qualities)
    sample = self_blend(face, 0, 0, config=SynthConfig(out_size=48, jpeg_prob=1.0, downscale_prob=1.0))
    assert sample.image.shape == sample.real.shape == (48, 48, 3) and sample.mask.shape == (48, 48)
    assert 60 <= sample.params["post"]["jpeg_quality"] <= 100 and 0.5 <= sample.params["post"]["downscale"] <= 1.0
    plain = self_blend(face, 0, 0, config=SynthConfig(out_size=48, **NO_POST))
    np.testing.assert_allclose(plain.mask, sample.mask)  # post-processing draws do not move the mask
    with pytest.raises(ValueError, match="RGB uint8"):
        self_blend(face.astype(np.float32), 0, 0)
    with pytest.raises(ValueError, match="at least 16x16"):
        self_blend(face[:8, :8], 0, 0)
    with pytest.raises(ValueError, match=r"landmarks must be \[68, 2\]"):
        self_blend(face, 0, 0, landmarks=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="jpeg_quality"):
        SynthConfig(jpeg_quality=(90, 50))
    with pytest.raises(ValueError, match="blend_ratios"):
        SynthConfig(blend_ratios=(0.0,))
    with pytest.raises(ValueError, match="unknown family 'gan'"):
        family_config("gan")
    with pytest.raises(ValueError, match="seed, epoch and index must be >= 0"):
        self_blend(face, -1, 0)
    with pytest.raises(ValueError, match="mask is empty"):
        self_blend(face, 0, 0, face_box=(-500, -500, -400, -400))


def _write_video(path: Path, image: np.ndarray, frames: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        for k in range(frames):
            shifted = np.roll(image, 2 * k, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(shifted, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_synthesize_writes_a_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "a.png", cv2.resize(data.astronaut(), (256, 256)))
    write_image(folder / "blank.png", np.zeros((64, 64, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    _write_video(folder / "clip.mp4", cv2.resize(data.astronaut()[:, ::-1].copy(), (320, 320)), frames=10)
    assert [number for number, _ in _sample_frames(folder / "clip.mp4", 3)] == [1, 5, 8]  # centres of 3 equal segments
    out = tmp_path / "out"
    manifest = synthesize([folder], out, per_face=2, seed=5, family="other", frames_per_video=3, config=family_config("other", out_size=64), progress=False)
    rows = read_manifest(manifest)  # the manifest reader of data.manifest accepts it
    with open(manifest, newline="") as handle:
        raw = list(csv.DictReader(handle))
    assert list(raw[0]) == ["path", "label", "mask", "video_id", "source_id", "frame", "split"]
    assert [r.label for r in rows].count("real") == 4 and [r.label for r in rows].count("fake") == 8  # 1 image face + 3 frames
    for row in raw:
        assert not Path(row["path"]).is_absolute() and (out / row["path"]).is_file()
        if row["label"] == "fake":
            mask = np.asarray(Image.open(out / row["mask"]))
            assert mask.dtype == np.uint8 and mask.shape == (64, 64) and mask.max() > 128
            assert (out / row["mask"].replace(".png", "_boundary.png")).is_file()
            assert "+" in row["source_id"]  # cross-identity: target+donor
    video_rows = [r for r in rows if r.video_id]
    assert len(video_rows) == 9 and {r.frame for r in video_rows} == {1, 5, 8}
    summary = json.loads((out / "synth.json").read_text())
    assert summary["counts"] == {"inputs": 5, "frames": 5, "faces": 4, "fakes": 8}
    assert sorted(Path(e["path"]).name for e in summary["errors"]) == ["broken.jpg", "broken.mp4"]
    assert "damaged or truncated" in next(e["error"] for e in summary["errors"] if e["path"].endswith(".mp4"))
    params = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    assert len(params) == 8 and all(p["family"] == "other" and "donor" in p for p in params)
    again = synthesize([folder], tmp_path / "again", per_face=2, seed=5, family="other", frames_per_video=3, config=family_config("other", out_size=64), progress=False)
    assert again.read_bytes() == manifest.read_bytes()
    first_fake = next(r["path"] for r in raw if r["label"] == "fake")
    assert (tmp_path / "again" / first_fake).read_bytes() == (out / first_fake).read_bytes()

    dataset = BlendedFaceDataset.from_folder(out, size=32, seed=1, transform=HorizontalFlip(0.5))
    assert len(dataset) == 8 and len(read_faces(out)) == 4
    real, fake = dataset[4], dataset[5]  # face 2: its real and a fake of it
    assert real["label"] == 0 and fake["label"] == 1 and real["has_mask"] and fake["has_mask"]
    assert real["image"].shape == fake["image"].shape == (3, 32, 32) and fake["mask"].shape == (1, 32, 32)
    assert real["mask"].abs().sum() == 0 and fake["mask"].max() > 0.2
    assert torch.equal(fake["image"], dataset[5]["image"]) and torch.equal(fake["mask"], dataset[5]["mask"])
    dataset.set_epoch(1)
    assert not torch.equal(fake["mask"], dataset[5]["mask"])
    with pytest.raises(IndexError, match="out of range"):
        dataset[8]
    manifest_rows = [r for r in rows if r.label == "real"][:1]
    mixed = ConcatDataset([dataset, ManifestDataset(manifest_rows, size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)])
    batch = next(iter(DataLoader(mixed, batch_size=9)))  # same keys and shapes as ManifestDataset: one batch
    assert tuple(batch["image"].shape) == (9, 3, 32, 32) and batch["label"].tolist() == [0, 1] * 4 + [0]


def test_sample_frames_of_a_real_video() -> None:
    path = REAL_VIDEOS / "ffpp_original_634.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared real videos are not on this machine")
    frames = _sample_frames(path, 4)
    assert [number for number, _ in frames] == [int((k + 0.5) * 338 / 4) for k in range(4)]  # 338 frames
    assert all(image.shape == (720, 1280, 3) and image.dtype == np.uint8 for _, image in frames)


def test_the_real_counterpart_is_the_untouched_face() -> None:
    """Even when SBI jitters the target copy, the real written beside a fake is the face itself."""
    face = cv2.resize(data.astronaut()[40:220, 140:320].copy(), (96, 96))
    config = family_config("sbi", jpeg_prob=0.0, downscale_prob=0.0)
    changed_target = 0
    for index in range(12):
        sample = self_blend(face, 3, index, config=config)
        assert np.array_equal(sample.real, face)
        changed_target += not np.array_equal(sample.target, face)
    assert changed_target > 0  # the case that matters occurred
