"""ManifestDataset / FolderDataset: tensors, normalisation, masks and their sentinel, seeded augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from deepfake_attention.data.datasets import NO_MASK, FolderDataset, HorizontalFlip, ManifestDataset
from deepfake_attention.data.manifest import ManifestRow
from deepfake_attention.data.media import MediaError
from deepfake_attention.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocess

from .conftest import random_rgb, write_image

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def write_mask(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)  # 2-D uint8: grayscale "L"
    return path


def halves(height: int, width: int, left: int, right: int, channels: int = 0) -> np.ndarray:
    array = np.full((height, width) + ((channels,) if channels else ()), right, dtype=np.uint8)
    array[:, : width // 2] = left
    return array


def test_image_label_mask_and_normalisation(tmp_path: Path) -> None:
    colour = np.array([200, 100, 50], dtype=np.uint8)
    write_image(tmp_path / "fake.png", np.broadcast_to(colour, (16, 16, 3)).copy())
    write_mask(tmp_path / "fake_mask.png", halves(16, 16, 255, 64))
    write_image(tmp_path / "real.png", random_rgb(16, 16))
    rows = [ManifestRow(str(tmp_path / "fake.png"), "fake", mask=str(tmp_path / "fake_mask.png")), ManifestRow(str(tmp_path / "real.png"), "real")]
    dataset = ManifestDataset(rows, size=16, mean=MEAN, std=STD)
    sample = dataset[0]
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip(colour.tolist(), MEAN, STD)]  # (200/255-0.5)/0.25 = 1.1373...
    assert torch.allclose(sample["image"].mean(dim=(1, 2)), torch.tensor(expected), atol=1e-6)
    assert torch.allclose(sample["image"].std(dim=(1, 2)), torch.zeros(3))
    assert (sample["label"], sample["has_mask"], sample["index"]) == (1, True, 0)
    assert sample["mask"].shape == (1, 16, 16)
    assert torch.equal(sample["mask"][0, :, :8], torch.ones(16, 8)) and torch.allclose(sample["mask"][0, :, 8:], torch.full((16, 8), 64 / 255))
    real = dataset[-1]
    assert (real["label"], real["has_mask"], real["index"]) == (0, True, 1)
    assert torch.equal(real["mask"], torch.zeros(1, 16, 16))  # a real face: nothing is forged
    reference = (torch.from_numpy(random_rgb(16, 16)).permute(2, 0, 1) / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert torch.allclose(real["image"], reference, atol=1e-6)
    with pytest.raises(IndexError, match="index 2 out of range for 2 rows"):
        dataset[2]


def test_mask_resized_with_the_image_geometry(tmp_path: Path) -> None:
    write_image(tmp_path / "f.png", halves(24, 40, 255, 0, channels=3))
    write_mask(tmp_path / "m.png", halves(24, 40, 255, 0))
    sample = ManifestDataset([ManifestRow(str(tmp_path / "f.png"), "fake", mask=str(tmp_path / "m.png"))], size=16, mean=MEAN, std=STD)[0]
    mask, red = sample["mask"][0], sample["image"][0] * STD[0] + MEAN[0]
    assert torch.allclose(mask, red, atol=1 / 255 + 1e-6)  # same resize: the mask follows the pixels
    assert torch.equal(mask[:, :7], torch.ones(16, 7)) and torch.equal(mask[:, 9:], torch.zeros(16, 7))
    assert bool((mask[:, :-1] >= mask[:, 1:]).all())


def test_sentinel_when_no_mask(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, random_rgb(12, 12))
    write_mask(tmp_path / "mb.png", np.full((12, 12), 255))
    rows = [ManifestRow(str(tmp_path / "a.png"), "fake"), ManifestRow(str(tmp_path / "b.png"), "real", mask=str(tmp_path / "mb.png"))]
    sample = ManifestDataset(rows, size=8, mean=MEAN, std=STD)[0]
    assert sample["has_mask"] is False and torch.equal(sample["mask"], torch.full((1, 8, 8), NO_MASK))
    without = ManifestDataset(rows, size=8, mean=MEAN, std=STD, with_masks=False)
    assert all(not without[i]["has_mask"] and bool((without[i]["mask"] == -1).all()) for i in range(2))
    batch = next(iter(DataLoader(ManifestDataset(rows, size=8, mean=MEAN, std=STD), batch_size=2)))
    assert batch["image"].shape == (2, 3, 8, 8) and batch["mask"].shape == (2, 1, 8, 8)
    assert batch["has_mask"].tolist() == [False, True] and batch["label"].tolist() == [1, 0] and batch["index"].tolist() == [0, 1]
    assert batch["mask"][1].min() == 1.0


def test_bad_files_raise_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    write_image(tmp_path / "ok.png", random_rgb(10, 12))
    write_mask(tmp_path / "small.png", np.zeros((5, 5)))
    with pytest.raises(MediaError, match=r"broken.png: not a recognised image format"):
        ManifestDataset([ManifestRow(str(tmp_path / "broken.png"), "real")], size=8, mean=MEAN, std=STD)[0]
    with pytest.raises(MediaError, match=r"missing.png: file not found"):
        ManifestDataset([ManifestRow(str(tmp_path / "missing.png"), "real")], size=8, mean=MEAN, std=STD)[0]
    with pytest.raises(MediaError, match=r"nomask.png: file not found"):
        ManifestDataset([ManifestRow(str(tmp_path / "ok.png"), "fake", mask=str(tmp_path / "nomask.png"))], size=8, mean=MEAN, std=STD)[0]
    with pytest.raises(ValueError, match=r"small.png: mask is 5x5 but its image .*ok.png is 12x10"):
        ManifestDataset([ManifestRow(str(tmp_path / "ok.png"), "fake", mask=str(tmp_path / "small.png"))], size=8, mean=MEAN, std=STD)[0]


@pytest.mark.parametrize(
    "rows, kwargs, error, message",
    [
        ([], {}, ValueError, "no rows"),
        ([ManifestRow("v.mp4", "fake")], {}, ValueError, r"row 0: column 'path' is a video \(v.mp4\).*extract frames first"),
        ([ManifestRow("a.png", "fake", mask="m.mp4")], {}, ValueError, r"column 'mask' is a video"),
        ([ManifestRow("a.png", "real")], {"size": 4}, ValueError, "size must be >= 8"),
        ([ManifestRow("a.png", "real")], {"std": (0.2, 0.0, 0.2)}, ValueError, "std > 0"),
        ([ManifestRow("a.png", "real")], {"transform": "flip"}, TypeError, "transform must be callable"),
    ],
)
def test_constructor_errors(rows: list, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ManifestDataset(rows, **{"size": 8, "mean": MEAN, "std": STD, **kwargs})


def flip_dataset(tmp_path: Path, seed: int = 0) -> ManifestDataset:
    rows = []
    for i in range(8):
        write_image(tmp_path / f"{i}.png", halves(12, 12, 255, 0, channels=3))
        write_mask(tmp_path / f"{i}m.png", halves(12, 12, 255, 0))
        rows.append(ManifestRow(str(tmp_path / f"{i}.png"), "fake", mask=str(tmp_path / f"{i}m.png")))
    return ManifestDataset(rows, size=12, mean=MEAN, std=STD, transform=HorizontalFlip(0.5), seed=seed)


def flipped(sample: dict) -> bool:
    image_left_dark = bool(sample["image"][0, :, 0].mean() < 0)
    mask_left_empty = bool(sample["mask"][0, :, 0].max() == 0)
    assert image_left_dark == mask_left_empty  # image and mask flipped alike
    return image_left_dark


def test_augmentation_is_a_pure_function_of_seed_epoch_index(tmp_path: Path) -> None:
    dataset, again = flip_dataset(tmp_path), flip_dataset(tmp_path)
    per_epoch = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        again.set_epoch(epoch)
        flips = [flipped(dataset[i]) for i in range(8)]
        assert flips == [flipped(again[i]) for i in reversed(range(8))][::-1]  # another instance, other order: same
        expected = [np.random.default_rng(np.random.SeedSequence([0, epoch, i])).random() < 0.5 for i in range(8)]
        assert flips == expected
        per_epoch.append(flips)
    assert len({tuple(f) for f in per_epoch}) > 1  # epochs differ
    assert any(per_epoch[0]) and not all(per_epoch[0])
    other_seed = flip_dataset(tmp_path, seed=1)
    assert [flipped(other_seed[i]) for i in range(8)] != per_epoch[0]
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        dataset.set_epoch(-1)
    with pytest.raises(ValueError, match=r"HorizontalFlip.p must be in \[0, 1\]"):
        HorizontalFlip(1.5)


def test_folder_dataset_and_preprocess(tmp_path: Path) -> None:
    write_image(tmp_path / "real" / "r.png", random_rgb(20, 20))
    write_image(tmp_path / "fake" / "sub" / "f.jpg", random_rgb(20, 20, seed=1))
    write_mask(tmp_path / "masks" / "sub" / "f.png", np.full((20, 20), 255))
    dataset = FolderDataset(tmp_path, size=16, mean=MEAN, std=STD)
    assert [(s["label"], s["has_mask"], float(s["mask"].mean())) for s in (dataset[0], dataset[1])] == [(0, True, 0.0), (1, True, 1.0)]
    from_ckpt = ManifestDataset.from_preprocess(dataset.rows, Preprocess(size=32))
    assert from_ckpt[0]["image"].shape == (3, 32, 32) and (from_ckpt.mean, from_ckpt.std) == (IMAGENET_MEAN, IMAGENET_STD)
