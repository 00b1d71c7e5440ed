"""MTCNN: known faces on real photos, tight crops and the frame border, batching, strict weights."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image
from skimage import data as skdata

from deepfake_attention.crops import square_crop_box
from deepfake_attention.data import mtcnn, mtcnn_nets
from deepfake_attention.data.mtcnn import Detections, MTCNNDetector, MTCNNSettings
from deepfake_attention.data.mtcnn_nets import WEIGHTS_DIR, WEIGHTS_SHA256, Flatten, MTCNNWeightsError, load_net, pyramid_layout

# Face boxes drawn by hand on the photos (brows-or-hairline to chin, cheek to cheek), x0 y0 x1 y1.
GRACE_BOX = (172, 122, 350, 328)
ASTRONAUT_BOX = (184, 72, 263, 176)


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector()


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def tight_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The face box enlarged 1.0x (a square of the box's longer side), resized to 240x240."""
    x0, y0, x1, y1 = square_crop_box(box, image.shape, 1.0)
    return cv2.resize(image[y0:y1, x0:x1], (240, 240), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(("name", "truth"), [("grace", GRACE_BOX), ("astronaut", ASTRONAUT_BOX)])
def test_known_face(detector: MTCNNDetector, request: pytest.FixtureRequest, name: str, truth: tuple) -> None:
    image = request.getfixturevalue(name)
    (found,) = detector.detect([image])
    assert isinstance(found, Detections) and len(found) == 1
    assert found.boxes.shape == (1, 4) and found.scores.shape == (1,) and found.landmarks5.shape == (1, 5, 2)
    assert found.boxes.dtype == found.scores.dtype == found.landmarks5.dtype == np.float32
    box, points = found.boxes[0], found.landmarks5[0]
    assert iou(box, truth) >= 0.6
    assert found.scores[0] > 0.9
    assert np.all((points >= box[:2]) & (points <= box[2:]))
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_boxes_are_mapped_back_from_the_downscaled_copy(detector: MTCNNDetector, grace: np.ndarray) -> None:
    big = cv2.resize(grace, (grace.shape[1] * 2, grace.shape[0] * 2), interpolation=cv2.INTER_LINEAR)  # 1024x1200 -> 640 px copy
    (found,) = detector.detect([big])
    assert len(found) == 1
    assert iou(found.boxes[0], [2 * v for v in GRACE_BOX]) >= 0.6
    assert np.all((found.landmarks5[0] >= found.boxes[0, :2]) & (found.landmarks5[0] <= found.boxes[0, 2:]))


def test_tight_crop_yields_one_face(detector: MTCNNDetector, grace: np.ndarray, astronaut: np.ndarray) -> None:
    crops = [tight_crop(grace, GRACE_BOX), tight_crop(astronaut, ASTRONAUT_BOX)]
    for found in detector.detect(crops):
        assert len(found) == 1
        assert iou(found.boxes[0], (0, 0, 240, 240)) >= 0.5


def half_out(image: np.ndarray, truth: tuple, side: str) -> tuple[np.ndarray, tuple]:
    """``image`` cut through the face's centre so half of it is outside the frame on ``side``,
    and the visible part of the face box in the cut image's pixels."""
    if side == "left":
        centre = (truth[0] + truth[2]) // 2
        return np.ascontiguousarray(image[:, centre:]), (0, truth[1], truth[2] - centre, truth[3])
    centre = (truth[1] + truth[3]) // 2
    return np.ascontiguousarray(image[:centre]), (truth[0], truth[1], truth[2], centre)


@pytest.mark.parametrize(("name", "truth", "side"), [("astronaut", ASTRONAUT_BOX, "left"), ("grace", GRACE_BOX, "bottom")])
def test_face_cut_by_the_border(detector: MTCNNDetector, request: pytest.FixtureRequest, name: str, truth: tuple, side: str) -> None:
    """Half the face shifted out of the frame: found thanks to the padded pyramid, its box clipped at the border."""
    image, visible = half_out(request.getfixturevalue(name), truth, side)
    (found,) = detector.detect([image])
    assert len(found) == 1
    assert (found.boxes[0, 0] == 0.0) if side == "left" else (found.boxes[0, 3] == image.shape[0])
    assert iou(found.boxes[0], visible) >= 0.5
    assert len(MTCNNDetector(MTCNNSettings(pad=0.0)).detect([image])[0]) == 0  # without the border, P-Net misses it


def test_min_face_fraction_ignores_smaller_faces(astronaut: np.ndarray) -> None:
    assert len(MTCNNDetector(MTCNNSettings(min_face_fraction=0.15)).detect([astronaut])[0]) == 1  # the face is ~0.2 of 512 px
    assert len(MTCNNDetector(MTCNNSettings(min_face_fraction=0.4)).detect([astronaut])[0]) == 0


def test_no_face_in_blank_or_noise(detector: MTCNNDetector) -> None:
    rng = np.random.default_rng(0)
    images = [np.zeros((240, 320, 3), np.uint8), np.full((480, 640, 3), 255, np.uint8), np.full((300, 300, 3), 128, np.uint8)]
    images += [rng.integers(0, 256, size=(360, 640, 3), dtype=np.uint8) for _ in range(3)]
    images.append(cv2.GaussianBlur(images[-1], (0, 0), 3))
    assert [len(found) for found in detector.detect(images)] == [0] * len(images)


def test_batched_equals_one_by_one(detector: MTCNNDetector, grace: np.ndarray, astronaut: np.ndarray) -> None:
    same_size = [np.ascontiguousarray(grace[:, ::-1]), cv2.GaussianBlur(grace, (0, 0), 1.5), np.clip(grace.astype(np.int16) + 40, 0, 255).astype(np.uint8)]
    images = [grace, astronaut, *same_size, np.zeros((64, 96, 3), np.uint8), tight_crop(grace, GRACE_BOX), astronaut[100:400, 50:450]]
    assert 4 > mtcnn.PNET_PIXELS // np.prod(pyramid_layout(600, 512, 20.0, 0.709, 6).canvas)  # P-Net takes the four in two passes
    together = detector.detect(images)
    for image, batched in zip(images, together):
        (alone,) = detector.detect([image])
        assert len(batched) == len(alone)
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-4, rtol=0)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-4, rtol=0)
        np.testing.assert_allclose(batched.landmarks5, alone.landmarks5, atol=1e-4, rtol=0)
    assert detector.detect([]) == []


def test_detector_pickles_without_its_networks(detector: MTCNNDetector, astronaut: np.ndarray) -> None:
    detector.nets()
    copy = pickle.loads(pickle.dumps(detector))
    assert copy._nets is None and copy.settings == detector.settings
    np.testing.assert_allclose(copy.detect([astronaut])[0].boxes, detector.detect([astronaut])[0].boxes, atol=1e-4)
    assert len(pickle.dumps(detector)) < 10_000


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: list[np.ndarray], detector: MTCNNDetector) -> None:
        self.images, self.detector = images, detector

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.detector.detect([self.images[index]])[0].boxes


def test_detector_runs_in_dataloader_workers(detector: MTCNNDetector, grace: np.ndarray, astronaut: np.ndarray) -> None:
    loader = torch.utils.data.DataLoader(_Images([grace, astronaut], detector), batch_size=None, num_workers=1)
    for image, boxes in zip([grace, astronaut], loader):
        np.testing.assert_allclose(np.asarray(boxes), detector.detect([image])[0].boxes, atol=1e-4)


def test_bad_input_is_refused(detector: MTCNNDetector, grace: np.ndarray) -> None:
    with pytest.raises(TypeError, match="wrap a single image in a list"):
        detector.detect(grace)
    with pytest.raises(TypeError, match="numpy array"):
        detector.detect([Image.fromarray(grace)])
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect([grace.astype(np.float32)])
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect([grace[..., 0]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_face": 8}, "min_face"),
        ({"min_face_fraction": 1.0}, "min_face_fraction"),
        ({"thresholds": (0.6, 0.7)}, "thresholds"),
        ({"thresholds": (0.6, 0.7, 1.5)}, "thresholds"),
        ({"scale_factor": 1.2}, "scale_factor"),
        ({"nms_thresholds": (0.5, 0.7, 0.7, 0.0)}, "nms_thresholds"),
        ({"max_side": 16}, "max_side"),
        ({"pad": -0.1}, "pad"),
    ],
)
def test_settings_are_validated(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MTCNNSettings(**kwargs)
    with pytest.raises(TypeError, match="MTCNNSettings"):
        MTCNNDetector(settings=kwargs)  # type: ignore[arg-type]


def test_weights_load_strictly_and_match_their_provenance() -> None:
    from safetensors.torch import load_file

    for name in ("pnet", "rnet", "onet"):
        net = load_net(name)
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        assert set(net.state_dict()) == set(load_file(str(WEIGHTS_DIR / f"{name}.safetensors")))
    provenance = (WEIGHTS_DIR / "PROVENANCE.md").read_text()
    for name, digest in WEIGHTS_SHA256.items():
        assert re.search(rf"`{name}\.safetensors` \| `{digest}`", provenance)
    licence = (WEIGHTS_DIR / "LICENSE").read_text()
    assert "Copyright (c) 2016 Kaipeng Zhang" in licence and "Copyright 2020 Viktoria Rosjo" in licence


def test_tampered_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("pnet", "rnet", "onet"):
        shutil.copy(WEIGHTS_DIR / f"{name}.safetensors", tmp_path / f"{name}.safetensors")
    load_net("pnet", tmp_path)  # an identical copy loads
    raw = bytearray((tmp_path / "pnet.safetensors").read_bytes())
    raw[-100] ^= 0x01  # one bit of one weight
    (tmp_path / "pnet.safetensors").write_bytes(bytes(raw))
    with pytest.raises(MTCNNWeightsError, match="SHA-256 .* expected .* altered"):
        load_net("pnet", tmp_path)
    monkeypatch.setitem(mtcnn_nets.WEIGHTS_SHA256, "rnet", "0" * 64)  # a recorded digest that no longer fits
    with pytest.raises(MTCNNWeightsError, match="SHA-256"):
        load_net("rnet")
    with pytest.raises(MTCNNWeightsError, match="SHA-256"):
        MTCNNDetector().nets()


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(WEIGHTS_DIR / "onet.safetensors"))
    state["conv6_3.weight_renamed"] = state.pop("conv6_3.weight")
    save_file(state, str(tmp_path / "onet.safetensors"))
    with pytest.raises(MTCNNWeightsError, match="do not fit ONet"):
        load_net("onet", tmp_path, check_sha256=False)
    (tmp_path / "rnet.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(MTCNNWeightsError, match="not a readable safetensors"):
        load_net("rnet", tmp_path, check_sha256=False)
    with pytest.raises(MTCNNWeightsError, match="not found"):
        load_net("pnet", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown MTCNN network"):
        load_net("qnet")


def test_flatten_order_matters(grace: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-Net and O-Net read their features in (C, W, H) order; (C, H, W) loads but finds no face."""
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    assert Flatten()(x).tolist() == [x[0].transpose(1, 2).flatten().tolist()]
    monkeypatch.setattr(Flatten, "forward", lambda self, x: x.flatten(1))
    found = MTCNNDetector().detect([grace])[0]  # on the corpus: 15 of 420 faces missed, 65 extra boxes (3 in the right order)
    assert len(found) != 1 or iou(found.boxes[0], GRACE_BOX) < 0.6


def test_min_overlap_nms_is_greedy_nms() -> None:
    from deepfake_attention.data.mtcnn import _nms_min

    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 80, size=(60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, size=(60, 2))], axis=1)
    scores, groups = rng.uniform(size=60), rng.integers(0, 3, size=60)

    def greedy() -> list[int]:
        kept: list[int] = []
        for k in np.argsort(-scores, kind="stable"):
            x0, y0 = np.maximum(boxes[kept, :2], boxes[k, :2]).T
            x1, y1 = np.minimum(boxes[kept, 2:], boxes[k, 2:]).T
            inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
            areas = np.prod(boxes[kept, 2:] - boxes[kept, :2], axis=1)
            smaller = np.minimum(areas, np.prod(boxes[k, 2:] - boxes[k, :2]))
            if not np.any((inter / smaller > 0.7) & (groups[kept] == groups[k])):
                kept.append(int(k))
        return kept

    got = _nms_min(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32), torch.tensor(groups), 0.7)
    assert got.tolist() == greedy()


def test_packed_pyramid_equals_each_level_alone() -> None:
    """Every P-Net cell of the one-canvas pyramid computes what P-Net on its padded level alone would."""
    import torch.nn.functional as F

    pnet, pad, black = load_net("pnet"), 6, -127.5 * 0.0078125
    image = torch.rand(1, 3, 90, 160) * 2 - 1
    layout = pyramid_layout(90, 160, 20.0, 0.709, pad)
    canvas = torch.full((1, 3, *layout.canvas), black)
    alone = []
    for y, x, h, w in layout.levels:
        level = F.interpolate(image, size=(h, w), mode="area")
        canvas[:, :, y : y + h, x : x + w] = level
        alone.append(pnet.forward_logits(F.pad(level, (pad, pad + w % 2, pad, pad + h % 2), value=black))[0][0])
    packed = pnet.forward_logits(canvas)[0][0]
    assert len(layout.levels) == 5 and len({x for _, x, _, _ in layout.levels}) > 1  # two levels share a shelf
    for k, ((y, x, _, _), logits) in enumerate(zip(layout.levels, alone)):
        top, left = (y - pad) // 2, (x - pad) // 2
        assert torch.equal(layout.cell_level == k, F.pad(torch.ones_like(logits, dtype=torch.bool), (left, layout.cell_level.shape[1] - left - logits.shape[1], top, layout.cell_level.shape[0] - top - logits.shape[0])))
        torch.testing.assert_close(packed[top : top + logits.shape[0], left : left + logits.shape[1]], logits, rtol=1e-5, atol=1e-5)
