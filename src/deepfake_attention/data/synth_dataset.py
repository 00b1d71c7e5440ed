"""Synthesized-forgery datasets: written to a folder (:func:`synthesize`) or made on the fly
(:class:`BlendedFaceDataset`), both from the pure functions of :mod:`.synth`.

A dataset folder written by :func:`synthesize`::

    crops/<face>.png            real face crops at their native size (the blend inputs)
    faces.jsonl                 one line per crop: path, face box and landmarks in crop pixels, ids
    images/real/<face>.png      the real counterpart of fake n0 (label real): its target copy
                                with the same post-processing (SBI may have jittered its colours)
    images/fake/<face>-n<j>.png the fakes
    masks/<face>-n<j>.png       8-bit M (0 = untouched ... 255 = fully the source)
    masks/<face>-n<j>_boundary.png   8-bit B = 4 M (1 - M)
    params.jsonl                every random choice of every fake
    manifest.csv                path, label, mask, video_id, source_id, frame, split
    synth.json                  options, counts and the inputs that could not be used
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..files import atomic_write_bytes, atomic_write_json, display_path, raw_path_bytes, safe_stem
from .datasets import Sampling
from .faces import FaceCrop, detect_faces
from .generators.family import FingerprintBank, fingerprint_fake, soften
from .inputs import discover
from .manifest import ManifestRow, write_manifest
from .media import MediaError, read_image
from .synth import FAMILIES, SynthConfig, SynthSample, cross_blend, family_config, postprocess, sample_rng, self_blend
from .transforms import FAKE_INDEX, IMAGENET_MEAN, IMAGENET_STD, to_tensor
from .video import iter_sampled_frames

DEFAULT_FRAMES_PER_VIDEO = 8


@dataclass(frozen=True)
class FaceRecord:
    """A real face crop and what is known about it (boxes and landmarks in crop pixels)."""

    crop: str
    face_box: tuple[int, int, int, int]
    landmarks: list[list[float]] | None = None
    source_id: str = ""
    video_id: str = ""
    frame: int | None = None
    person: str = ""
    """Who this is, when known (an identity, or file and face for unnamed people): :func:`person_weights`."""


def person_weights(faces: Sequence[FaceRecord]) -> list[float]:
    """One weight per face, ``1 / (faces of the same person)``: every person weighs 1 in total, however
    many frames or files show them. The person is ``person``, else ``source_id``, else the crop itself."""
    keys = [face.person or face.source_id or face.crop for face in faces]
    counts = Counter(keys)
    return [1.0 / counts[key] for key in keys]


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
    (:func:`~.generators.family.soften`) with the same probability, so softness says nothing of the class.
    """

    def __init__(
        self, faces: Sequence[FaceRecord], *, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
        family: str = "sbi", seed: int = 0, config: SynthConfig | None = None, transform: Callable[..., Any] | None = None,
        paired: bool = False, weights: Sequence[float] | None = None, fingerprint: FingerprintBank | None = None, fingerprint_prob: float = 0.0,
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
        self.fingerprint, self.fingerprint_prob = fingerprint, float(fingerprint_prob)

    @property
    def sampling(self) -> Sampling | None:
        """How the training loop draws this dataset's epochs (None: a plain shuffle)."""
        if not self.paired and self.weights is None:
            return None
        weights = self.weights if self.paired or self.weights is None else tuple(w for w in self.weights for _ in range(2))
        return Sampling(pairs=self.paired, weights=weights)

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> "BlendedFaceDataset":
        """The faces of a folder written by :func:`synthesize` (its ``faces.jsonl``)."""
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
                image, _ = soften(image, rng)
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


def read_faces(folder: str | Path) -> list[FaceRecord]:
    """The :class:`FaceRecord` list of a :func:`synthesize` folder, crop paths made absolute."""
    folder = Path(folder)
    path = folder / "faces.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; make the folder with `deepfake-attention synth`")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        data["crop"] = str(folder / data["crop"])
        data["face_box"] = tuple(data["face_box"])
        records.append(FaceRecord(**data))
    return records


def _sample_frames(path: str | Path, count: int) -> list[tuple[int, np.ndarray]]:
    """``count`` uniformly sampled frames as (frame index, RGB uint8); see :func:`.video.iter_sampled_frames`."""
    with iter_sampled_frames(path, frames=count) as frames:
        return [(frame.sample_index if frame.frame_index is None else frame.frame_index, frame.image) for frame in frames]


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _u8_map(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def synthesize(
    inputs: Iterable[str | Path], out_dir: str | Path, *, per_face: int = 4, seed: int = 0, family: str = "sbi",
    landmarks: bool = False, frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO, detector: str = "mtcnn", crop_scale: float = 1.3,
    crop_border: str = "constant", include_real: bool = True, config: SynthConfig | None = None, progress: bool | None = None,
) -> Path:
    """Detect faces in real images and videos, make ``per_face`` fakes of each, write a dataset folder.

    Videos give ``frames_per_video`` uniformly spaced frames. Every face of every frame is found
    with ``detector`` and cropped (``crop_scale`` x its box, padded past the border as ``crop_border``
    says: :data:`~..crops.CROP_BORDERS`); fake ``j`` of face ``i`` is sample ``i * per_face + j`` of ``seed``.
    ``landmarks=True`` needs the ``landmarks`` extra. Inputs that cannot be read (and files in
    folders that are not media) are listed in ``synth.json``. Returns the path of ``manifest.csv``; the layout is in the module docstring.
    """
    if per_face < 1 or frames_per_video < 1:
        raise ValueError(f"per_face and frames_per_video must be >= 1, got {per_face}, {frames_per_video}")
    config = config or family_config(family)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {list(FAMILIES)}")
    predictor = None
    if landmarks:
        from .landmarks import LandmarkPredictor

        predictor = LandmarkPredictor()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items, skipped = discover(inputs)
    faces, errors, frames_seen = [], [], 0
    for item in tqdm(items, desc="faces", unit="file", disable=(not progress) if progress is not None else None):
        stem = f"{safe_stem(item.path)}-{hashlib.sha256(raw_path_bytes(os.path.abspath(item.path))).hexdigest()[:8]}"  # video_id, source_id
        try:
            frames = _sample_frames(item.path, frames_per_video) if item.kind == "video" else [(None, read_image(item.path))]
        except MediaError as error:
            errors.append({"path": display_path(item.path), "error": str(error)})
            continue
        frames_seen += len(frames)
        for number, image in frames:
            for k, face in enumerate(detect_faces(image, detector, crop_scale=crop_scale, crop_border=crop_border, landmarks=predictor)):
                faces.append(save_face(out, f"{stem}-t{number or 0}-f{k}", face, source_id=stem, video_id=stem if item.kind == "video" else "", frame=number))
    write_faces(out, faces)
    counts = write_fakes([dataclasses.replace(f, crop=str(out / f.crop)) for f in faces], out, per_face=per_face, seed=seed, family=family,
                         config=config, include_real=include_real, progress=progress)
    atomic_write_json(out / "synth.json", {
        "inputs": [display_path(item.path) for item in items], "family": family, "seed": seed, "per_face": per_face, "landmarks": landmarks,
        "frames_per_video": frames_per_video, "detector": detector, "crop_scale": crop_scale, "crop_border": crop_border,
        "include_real": include_real,
        "config": json.loads(json.dumps(dataclasses.asdict(config))),
        "counts": {"inputs": len(items), "frames": frames_seen, **counts}, "errors": errors,
        "skipped_files": [display_path(entry.path) for entry in skipped],
    })
    return out / "manifest.csv"


def save_face(out: Path, name: str, face: FaceCrop, *, source_id: str = "", video_id: str = "", frame: int | None = None, person: str = "",
              max_side: int | None = None) -> FaceRecord:
    """Write ``face.crop`` as ``out/crops/<name>.png`` (shrunk so its longest side is at most ``max_side``
    when given); its record, boxes and landmarks in the written crop's pixels, crop path relative to ``out``."""
    crop = face.crop
    cx, cy = face.crop_box[:2] if face.crop_box is not None else (0, 0)
    scale = 1.0 if max_side is None else min(1.0, max_side / max(crop.shape[:2]))
    if scale < 1.0:
        crop = np.asarray(Image.fromarray(crop).resize((max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), Image.BILINEAR))
    relative = Path("crops") / f"{name}.png"
    _png(out / relative, crop)
    points = None if face.landmarks is None else ((face.landmarks - np.float32([cx, cy])) * np.float32(scale)).round(2).tolist()
    box = tuple(int(round((v - o) * scale)) for v, o in zip(face.box, (cx, cy, cx, cy)))
    return FaceRecord(relative.as_posix(), box, points, source_id, video_id, frame, person)  # type: ignore[arg-type]


def write_faces(out: Path, faces: Sequence[FaceRecord]) -> Path:
    """``out/faces.jsonl``: one line per face (what :func:`read_faces` reads back)."""
    return _atomic_lines(out / "faces.jsonl", [json.dumps(dataclasses.asdict(f)) for f in faces])


def _atomic_lines(path: Path, lines: Sequence[str]) -> Path:
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode())
    return path


def write_fakes(
    records: Sequence[FaceRecord], out: Path, *, per_face: int, seed: int, family: str = "sbi", config: SynthConfig | None = None,
    include_real: bool = True, progress: bool | None = None, bank: FingerprintBank | None = None, decoder: str | None = None,
) -> dict[str, int]:
    """Fake ``j`` of face ``i`` (sample ``i * per_face + j`` of ``seed``) of each record (crop paths absolute),
    with masks, boundaries, the real counterparts, ``params.jsonl`` and ``manifest.csv`` under ``out``. Returns counts.

    The ``fingerprint`` family (``bank``, optionally one ``decoder``) writes no masks: its rows have none."""
    if family == "other" and len(records) < 2:
        raise ValueError(f"the 'other' family needs at least two faces; found {len(records)} in the inputs")
    config = config or family_config(family)
    rows, params_lines = [], []
    bar = tqdm(total=len(records) * per_face, desc=f"synth {family}", unit="fake", disable=(not progress) if progress is not None else None)
    for i, face in enumerate(records):
        name = Path(face.crop).stem
        for j in range(per_face):
            sample = make_sample(records, i * per_face + j, seed=seed, family=family, config=config, image_index=i, bank=bank, decoder=decoder)
            fake, mask = Path("images/fake") / f"{name}-n{j}.png", ""
            _png(out / fake, sample.image)
            if family != "fingerprint":  # a fingerprint is everywhere: no mask to write
                mask = f"masks/{name}-n{j}.png"
                _png(out / mask, _u8_map(sample.mask))
                _png(out / "masks" / f"{name}-n{j}_boundary.png", _u8_map(sample.boundary))
            if include_real and j == 0:
                _png(out / "images/real" / f"{name}.png", sample.real)
                rows.append(ManifestRow(f"images/real/{name}.png", "real", "", face.video_id, face.source_id, face.frame))
            donor = sample.params.get("donor", {}).get("source_id")
            source_id = face.source_id if donor in (None, face.source_id) else f"{face.source_id}+{donor}"
            rows.append(ManifestRow(fake.as_posix(), "fake", mask, face.video_id, source_id, face.frame))
            params_lines.append(json.dumps({"path": fake.as_posix(), **sample.params}))
            bar.update(1)
    bar.close()
    _atomic_lines(out / "params.jsonl", params_lines)
    write_manifest(rows, out / "manifest.csv")
    return {"faces": len(records), "fakes": len(records) * per_face}
