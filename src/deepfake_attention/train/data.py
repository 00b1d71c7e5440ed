"""The datasets a training config describes: manifests of images (with masks) and folders of
real faces that give a real and a fresh self-blended fake per face per epoch."""

from __future__ import annotations

from typing import Sequence

from torch.utils.data import ConcatDataset, Dataset

from ..data.augment import ColourJitter, Compose, Degrade
from ..data.datasets import HorizontalFlip, ManifestDataset
from ..data.face_records import person_weights, read_faces
from ..data.generators.family import FingerprintBank
from ..data.manifest import read_manifest
from ..data.synth import family_config
from ..data.synth_dataset import BlendedFaceDataset
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .config import TrainConfig


class EpochConcat(ConcatDataset):
    """``ConcatDataset`` that passes :meth:`set_epoch` on to its parts."""

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)


def training_transform(cfg: TrainConfig) -> Compose | None:
    """The augmentations ``cfg.data`` asks for (flip; affine jitter; colour jitter with blur and noise), or None."""
    steps = ([HorizontalFlip()] if cfg.data.hflip else []) + ([cfg.data.affine_jitter()] if cfg.data.affine_prob > 0 else [])
    steps += [ColourJitter(), Degrade()] if cfg.data.colour_jitter else []
    return Compose(steps) if steps else None


def fingerprint_bank(cfg: TrainConfig) -> FingerprintBank | None:
    """The decoder bank ``cfg.synth`` asks for (None when ``fingerprint_prob`` is 0)."""
    synth = cfg.synth
    if synth.fingerprint_prob <= 0:
        return None
    latent = (synth.fingerprint_latent[0], synth.fingerprint_latent[1]) if synth.fingerprint_latent else None
    return FingerprintBank.load(synth.fingerprint_decoders or None, kinds=synth.fingerprint_kinds or None, latent=latent,
                                latent_share=synth.fingerprint_latent_share)


def _parts(cfg: TrainConfig, manifests: Sequence[str], face_folders: Sequence[str], seed: int, augment: bool) -> list[Dataset]:
    transform = training_transform(cfg) if augment else None
    bank = fingerprint_bank(cfg) if augment and face_folders else None
    common = dict(size=cfg.data.size, mean=IMAGENET_MEAN, std=IMAGENET_STD, family="sbi", seed=seed, transform=transform,
                  config=family_config("sbi", **cfg.synth.overrides()), fingerprint=bank, fingerprint_prob=cfg.synth.fingerprint_prob if bank else 0.0,
                  softest=cfg.synth.fingerprint_softest)
    if augment and face_folders and (cfg.data.paired or cfg.data.weighting != "none"):
        # one dataset over every folder's faces, so the loop can draw pairs and weigh people across them
        faces = [face for folder in face_folders for face in read_faces(folder)]
        weights = person_weights(faces) if cfg.data.weighting == "person" else None
        parts: list[Dataset] = [BlendedFaceDataset(faces, paired=cfg.data.paired, weights=weights, **common)]
    else:
        parts = [BlendedFaceDataset.from_folder(folder, **common) for folder in face_folders]
    rows = [row for manifest in manifests for row in read_manifest(manifest)]
    if rows:
        parts.append(ManifestDataset(rows, size=cfg.data.size, mean=IMAGENET_MEAN, std=IMAGENET_STD, transform=transform, seed=seed))
    return parts


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """(train, val) from ``cfg.data``; validation samples are fixed (epoch 0, another seed, no augmentation)."""
    train_parts = _parts(cfg, cfg.data.train, cfg.data.real_faces, cfg.run.seed, augment=True)
    if len(train_parts) > 1 and any(getattr(part, "sampling", None) for part in train_parts):
        raise ValueError("data.paired / data.weighting draw from face folders only: put the manifests in data.val, or turn them off")
    if not train_parts:
        raise ValueError("the config names no training data: set data.train (manifests) or data.real_faces (face folders)")
    val_parts = _parts(cfg, cfg.data.val, cfg.data.val_real_faces, cfg.run.seed + 1, augment=False)
    train = train_parts[0] if getattr(train_parts[0], "sampling", None) else EpochConcat(train_parts)
    return train, (EpochConcat(val_parts) if val_parts else None)
