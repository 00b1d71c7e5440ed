"""Synthesized fakes made on the fly: :func:`make_sample` (the fake of one face record, pure) and
:class:`BlendedFaceDataset` (real faces and fresh fakes of them, for training), from the pure
functions of :mod:`.synth`. :mod:`.synth_writer` writes the same samples into a dataset folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import Sampling
from .face_records import FaceRecord, read_faces
from .generators.family import SOFTEST, FingerprintBank, check_softest, fingerprint_fake, soften
from .media import read_image
from .synth import FAMILIES, SynthConfig, SynthSample, cross_blend, family_config, postprocess, sample_rng, self_blend
from .transforms import FAKE_INDEX, IMAGENET_MEAN, IMAGENET_STD, to_tensor


def make_sample(
    faces: Sequence[FaceRecord], index: int, *, seed: int, family: str = "sbi", config: SynthConfig | None = None,
    epoch: int | None = None, image_index: int | None = None, bank: FingerprintBank | None = None, decoder: str | None = None,
) -> SynthSample:
    """The fake of ``faces[image_index]`` (default ``index % len(faces)``) for sample ``index``.

    ``"other"`` takes its donor from :func:`pick_donor` (another identity when there is one);
    ``"fingerprint"`` round-trips the face through ``decoder`` of ``bank`` (drawn when not given).
    Pure: the same arguments give a bit-identical sample.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {list(FAMILIES)}")
    position = index % len(faces) if image_index is None else image_index
    target = faces[position]
    image, points = read_image(target.crop), _points(target)
    config = config or family_config(family)
    if family == "fingerprint":
        if bank is None:
            raise ValueError("the 'fingerprint' family needs a decoder bank (generators.FingerprintBank)")
        return fingerprint_fake(image, seed, index, bank, decoder=decoder, config=config, epoch=epoch)
    if family == "sbi":
        return self_blend(image, seed, index, landmarks=points, face_box=target.face_box, config=config, epoch=epoch)
    donor = faces[pick_donor(faces, position, seed=seed, index=index, epoch=epoch)]
    sample = cross_blend(
        image, read_image(donor.crop), seed, index, target_landmarks=points, donor_landmarks=_points(donor),
        target_box=target.face_box, donor_box=donor.face_box, config=config, epoch=epoch,
    )
    sample.params["donor"] = {"crop": Path(donor.crop).name, "source_id": donor.source_id}
    return sample


def pick_donor(faces: Sequence[FaceRecord], target: int, *, seed: int, index: int, epoch: int | None = None) -> int:
    """Index of the donor face for a cross-identity blend: uniformly among faces of another
    ``source_id`` (else any other face), from a stream of (seed, [epoch,] index) apart from the sample's."""
    if len(faces) < 2:
        raise ValueError("the 'other' family blends a donor face onto a target: give at least two faces")
    others = [k for k, face in enumerate(faces) if face.source_id != faces[target].source_id or not face.source_id]
    others = [k for k in others if k != target] or [k for k in range(len(faces)) if k != target]
    entropy = [seed, index] if epoch is None else [seed, epoch, index]
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1,)))
    return others[int(rng.integers(len(others)))]


def _points(face: FaceRecord) -> np.ndarray | None:
    return None if face.landmarks is None else np.asarray(face.landmarks, dtype=np.float64)


class BlendedFaceDataset(Dataset):
    """Real faces and fresh fakes of them, made on the fly, as :class:`~.datasets.ManifestDataset` samples.

    Item ``2k`` is face ``k`` (label real, all-zero mask) and item ``2k + 1`` a fake of it (label
    fake, its mask M), so each face gives one real and one fake per epoch. The real goes through
    the same random post-processing as fakes (downscale, JPEG), so compression is no shortcut.
    Samples: ``image`` float32 [3, size, size] normalised with ``mean``/``std``, ``label``,
    ``mask`` float32 [1, size, size], ``has_mask`` (True), ``index``: the keys and shapes of
    ManifestDataset, so the two can be concatenated. Item ``i`` of epoch ``e`` derives from
    (seed, e, i) (:meth:`set_epoch`); ``transform(image, mask, rng)`` (e.g. ``HorizontalFlip``)
    gets its own stream of it.

    ``paired=True`` asks the training loop to draw each face's real and fake side by side (one
    batch holds a face and its own blend, as the SBI paper pairs them), and ``weights`` (one per
    face, e.g. :func:`person_weights`) to draw faces in proportion to them: see :attr:`sampling`.

    With a ``fingerprint`` bank, a fake is a generator-fingerprint fake instead of a blend with
    probability ``fingerprint_prob`` (``has_mask`` False: no mask loss), and a real is softened
    (:func:`~.generators.family.soften`, down to ``softest``) with the same probability, so softness says nothing of the class.
    """

    def __init__(
        self, faces: Sequence[FaceRecord], *, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
        family: str = "sbi", seed: int = 0, config: SynthConfig | None = None, transform: Callable[..., Any] | None = None,
        paired: bool = False, weights: Sequence[float] | None = None, fingerprint: FingerprintBank | None = None, fingerprint_prob: float = 0.0,
        softest: float = SOFTEST,
    ) -> None:
        if not faces:
            raise ValueError("no faces given; run `deepfake-attention synth` or pass FaceRecord items")
        if size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        self.faces, self.family, self.seed, self.epoch = list(faces), family, int(seed), 0
        self.mean, self.std, self.transform = tuple(mean), tuple(std), transform
        self.config = dataclasses.replace(config or family_config(family), out_size=int(size))
        if weights is not None and len(weights) != len(self.faces):
            raise ValueError(f"got {len(weights)} weights for {len(self.faces)} faces")
        self.paired, self.weights = bool(paired), None if weights is None else tuple(float(w) for w in weights)
        if not 0.0 <= fingerprint_prob <= 1.0 or (fingerprint_prob > 0 and fingerprint is None):
            raise ValueError(f"fingerprint_prob must be in [0, 1] and needs a fingerprint bank, got {fingerprint_prob}")
        self.fingerprint, self.fingerprint_prob, self.softest = fingerprint, float(fingerprint_prob), check_softest(softest)

    @property
    def sampling(self) -> Sampling | None:
        """How the training loop draws this dataset's epochs (None: a plain shuffle)."""
        if not self.paired and self.weights is None:
            return None
        weights = self.weights if self.paired or self.weights is None else tuple(w for w in self.weights for _ in range(2))
        return Sampling(pairs=self.paired, weights=weights)

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> "BlendedFaceDataset":
        """The faces of a folder written by :func:`~.synth_writer.synthesize` (its ``faces.jsonl``)."""
        return cls(read_faces(folder), **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples :meth:`__getitem__` returns."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return 2 * len(self.faces)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        face, fake = index // 2, index % 2 == 1
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index], spawn_key=(3,)))
        generated = self.fingerprint is not None and rng.random() < self.fingerprint_prob  # a fingerprint fake, or a softened real
        if fake:
            family = "fingerprint" if generated else self.family
            sample = make_sample(self.faces, index, seed=self.seed, family=family, config=self.config, epoch=self.epoch, image_index=face,
                                 bank=self.fingerprint)
            image, mask = sample.image, sample.mask
        else:
            image = read_image(self.faces[face].crop)
            if generated:
                image, _ = soften(image, rng, self.softest)
            (image,), _ = postprocess([image], sample_rng(self.seed, index, self.epoch), self.config)
            mask = np.zeros(image.shape[:2], np.float32)
        if self.transform is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index], spawn_key=(2,)))
            image, mask = self.transform(image, mask, rng)
        return {
            "image": to_tensor([image], self.mean, self.std)[0],
            "label": FAKE_INDEX if fake else 1 - FAKE_INDEX,
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "has_mask": not (fake and generated),
            "index": index,
        }
