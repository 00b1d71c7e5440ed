"""Synthesized-forgery datasets written to a folder: :func:`synthesize` (faces found in real media,
then their fakes) and :func:`write_fakes` (the fakes of given face records), from the same samples
that :class:`~.synth_dataset.BlendedFaceDataset` makes on the fly.

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
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..files import atomic_write_json, display_path, raw_path_bytes, safe_stem
from .face_records import FaceRecord, save_face, write_faces, write_lines, write_png
from .faces import detect_faces
from .generators.family import FingerprintBank
from .inputs import discover
from .manifest import ManifestRow, write_manifest
from .media import MediaError, read_image
from .synth import FAMILIES, SynthConfig, family_config
from .synth_dataset import make_sample
from .video import iter_sampled_frames

DEFAULT_FRAMES_PER_VIDEO = 8


def _sample_frames(path: str | Path, count: int) -> list[tuple[int, np.ndarray]]:
    """``count`` uniformly sampled frames as (frame index, RGB uint8); see :func:`.video.iter_sampled_frames`."""
    with iter_sampled_frames(path, frames=count) as frames:
        return [(frame.sample_index if frame.frame_index is None else frame.frame_index, frame.image) for frame in frames]


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
            write_png(out / fake, sample.image)
            if family != "fingerprint":  # a fingerprint is everywhere: no mask to write
                mask = f"masks/{name}-n{j}.png"
                write_png(out / mask, _u8_map(sample.mask))
                write_png(out / "masks" / f"{name}-n{j}_boundary.png", _u8_map(sample.boundary))
            if include_real and j == 0:
                write_png(out / "images/real" / f"{name}.png", sample.real)
                rows.append(ManifestRow(f"images/real/{name}.png", "real", "", face.video_id, face.source_id, face.frame))
            donor = sample.params.get("donor", {}).get("source_id")
            source_id = face.source_id if donor in (None, face.source_id) else f"{face.source_id}+{donor}"
            rows.append(ManifestRow(fake.as_posix(), "fake", mask, face.video_id, source_id, face.frame))
            params_lines.append(json.dumps({"path": fake.as_posix(), **sample.params}))
            bar.update(1)
    bar.close()
    write_lines(out / "params.jsonl", params_lines)
    write_manifest(rows, out / "manifest.csv")
    return {"faces": len(records), "fakes": len(records) * per_face}
