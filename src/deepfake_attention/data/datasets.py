"""PyTorch datasets over manifest rows: face images, labels and soft forgery masks.

Each sample is a dict::

    image     float32 [3, size, size], normalised with the checkpoint's mean and std
    label     int, 1 = fake, 0 = real (checkpoint.FAKE_INDEX)
    mask      float32 [1, size, size] in [0, 1]; filled with NO_MASK (-1) when unknown
    has_mask  bool, False exactly when ``mask`` is the sentinel
    index     int, the row's position

Masks: a row's mask PNG is read as grayscale and resized like the image (same geometry). A
*real* row without a mask file gets an all-zero mask with ``has_mask=True`` (nothing in a real
image is forged, so its ground truth is known); a *fake* row without one gets the sentinel.
``with_masks=False`` skips reading masks: every sample then carries the sentinel.

Bad files raise :class:`~.media.MediaError` naming the file. The dataset never substitutes
another sample: whether to stop or skip is the training loop's decision.

Augmentation is a pure function of ``(seed, epoch, index)``: ``transform(image, mask, rng)``
receives a generator from ``SeedSequence([seed, epoch, index])``, so a resumed or distributed
run sees identical samples. Call :meth:`ManifestDataset.set_epoch` before each epoch; with
``DataLoader(persistent_workers=True)`` the workers keep their own copy of the dataset and do not
see ``set_epoch``, so use non-persistent workers (the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .manifest import ManifestRow
from .media import VIDEO_EXTENSIONS, MediaError, read_image
from .protocols import folder_rows
from .transforms import FAKE_INDEX, Preprocess, resize_square, to_tensor

NO_MASK = -1.0
"""Value filling ``mask`` when a sample has no known mask (``has_mask`` is then False)."""

Transform = Callable[[np.ndarray, "np.ndarray | None", np.random.Generator], "tuple[np.ndarray, np.ndarray | None]"]
"""``(image uint8 [S, S, 3], mask float32 [S, S] or None, rng) -> (image, mask)``; all randomness from ``rng``."""


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror image and mask together with probability ``p`` (a :data:`Transform`)."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"HorizontalFlip.p must be in [0, 1], got {self.p}")

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        if rng.random() >= self.p:
            return image, mask
        return np.ascontiguousarray(image[:, ::-1]), None if mask is None else np.ascontiguousarray(mask[:, ::-1])


@dataclass(frozen=True)
class Sampling:
    """How a dataset wants its epochs drawn (a dataset may expose one as its ``sampling`` attribute).

    ``pairs``: items ``2k`` and ``2k + 1`` belong together (a real face and its own blend) and are
    drawn as one unit, side by side, so they share a batch. ``weights``: one non-negative weight
    per unit (pair or item): the epoch then draws as many units as there are, with replacement,
    in proportion to the weights (e.g. ``1 / faces of that person``, so people count, not files).
    """

    pairs: bool = False
    weights: tuple[float, ...] | None = None

    def units(self, num_samples: int) -> int:
        if self.pairs and num_samples % 2:
            raise ValueError(f"a paired dataset must have an even number of items, got {num_samples}")
        units = num_samples // 2 if self.pairs else num_samples
        if self.weights is not None:
            if len(self.weights) != units:
                raise ValueError(f"sampling has {len(self.weights)} weights for {units} units")
            if min(self.weights) < 0 or not sum(self.weights) > 0:
                raise ValueError("sampling weights must be >= 0 with a positive sum")
        return units


class ManifestDataset(Dataset):
    """Images of manifest rows as normalised tensors with labels and masks (see the module doc)."""

    def __init__(
        self,
        rows: Sequence[ManifestRow],
        *,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        with_masks: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        self.rows = tuple(rows)
        if not self.rows:
            raise ValueError("no rows: the manifest (or the split you selected) is empty")
        for number, row in enumerate(self.rows):
            if not isinstance(row, ManifestRow):
                raise TypeError(f"row {number} is a {type(row).__name__}, expected a ManifestRow")
            for column, path in (("path", row.path), ("mask", row.mask)):
                if Path(path).suffix.lower() in VIDEO_EXTENSIONS:
                    raise ValueError(f"row {number}: column '{column}' is a video ({path}); this dataset reads images, extract frames first")
        if size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError("mean and std need 3 values each (RGB), std > 0")
        if transform is not None and not callable(transform):
            raise TypeError("transform must be callable as transform(image, mask, rng)")
        self.size, self.mean, self.std = int(size), tuple(map(float, mean)), tuple(map(float, std))
        self.with_masks, self.transform, self.seed = with_masks, transform, int(seed)
        self.epoch = 0

    @classmethod
    def from_preprocess(cls, rows: Sequence[ManifestRow], preprocess: Preprocess, **kwargs: Any) -> "ManifestDataset":
        """A dataset using a checkpoint's input size, mean and std."""
        return cls(rows, size=preprocess.size, mean=preprocess.mean, std=preprocess.std, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations :meth:`__getitem__` returns."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self.rows) <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} rows")
        index = index % len(self.rows)
        row = self.rows[index]
        original = _read(row.path)
        image = resize_square(original, self.size)
        mask = None
        if self.with_masks and row.mask:
            mask = self._read_mask(row, original.shape[:2])
        elif self.with_masks and not row.is_fake:
            mask = np.zeros((self.size, self.size), dtype=np.float32)
        if self.transform is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
            image, mask = self.transform(image, mask, rng)
        if mask is None:
            mask_tensor = torch.full((1, self.size, self.size), NO_MASK)
        else:
            mask_tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
        return {
            "image": to_tensor([image], self.mean, self.std)[0],
            "label": FAKE_INDEX if row.is_fake else 1 - FAKE_INDEX,
            "mask": mask_tensor,
            "has_mask": mask is not None,
            "index": index,
        }

    def _read_mask(self, row: ManifestRow, shape: tuple[int, ...]) -> np.ndarray:
        return read_mask(row.mask, self.size, shape, image_name=row.path).astype(np.float32) / 255.0


class FolderDataset(ManifestDataset):
    """:class:`ManifestDataset` over ``root/real/**`` and ``root/fake/**`` images, with masks from
    ``root/masks/<same relative path>.png`` (see :func:`~.protocols.folder_rows`)."""

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        super().__init__(folder_rows(root), **kwargs)


def _read(path: str) -> np.ndarray:
    try:
        return read_image(path)
    except MediaError as error:
        raise MediaError(f"{path}: {error}") from None


def read_mask(path: str, size: int, image_shape: tuple[int, ...] | None = None, *, image_name: str = "") -> np.ndarray:
    """A soft-mask PNG as uint8 grey levels [size, size] (M = level / 255), resized like its image.

    ``image_shape`` (H, W) of the image it belongs to: a mask of another size is an error naming both.
    """
    gray = _read(path).mean(axis=2).round().astype(np.uint8)  # a grayscale PNG decodes to R = G = B
    if image_shape is not None and gray.shape != tuple(image_shape[:2]):
        its = f"its image {image_name}" if image_name else "its image"
        raise MediaError(f"{path}: mask is {gray.shape[1]}x{gray.shape[0]} but {its} is {image_shape[1]}x{image_shape[0]}")
    return resize_square(gray, size)
