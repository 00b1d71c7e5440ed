"""Manifests with the published splits for FaceForensics++ and Celeb-DF v2, and for plain folders.

The builders list *videos* (one row each, ``frame`` empty); frame sampling and face-crop
caching happen later. Paths are absolute; :func:`~.manifest.write_manifest` makes them relative
when the manifest is written inside the dataset folder.

FaceForensics++ (``ffpp_manifest``), the layout of the official download script::

    original_sequences/youtube/<c>/videos/XXX.mp4             real, source_id XXX
    manipulated_sequences/<Method>/<c>/videos/XXX_YYY.mp4     fake, source_id XXX+YYY (target first)
    manipulated_sequences/<Method>/masks/videos/XXX_YYY.mp4   its mask video (when present)
    train.json, val.json, test.json                           official splits: lists of pairs

An original belongs to the split of the pair that contains it; a manipulated ``XXX_YYY`` to the
split of both its ids, which the official files always agree on (when they do not, that is an
error: the JSONs do not belong to the download). DeepFakeDetection (``original_sequences/actors``
and ``manipulated_sequences/DeepFakeDetection``, files ``01__scene.mp4`` and
``01_02__scene__HASH.mp4``) has no official split: when asked for, its rows get an empty split
and ids ``actor01`` / ``actor01+actor02``.

Celeb-DF v2 (``celebdf_manifest``): ``Celeb-real/idX_NNNN.mp4`` (source_id ``idX``),
``Celeb-synthesis/idX_idY_NNNN.mp4`` (fake, ``idX+idY``: video of idX with the face of idY),
``YouTube-real/NNNNN.mp4`` (real, a different unnamed person each: ``youtube-NNNNN``) and
``List_of_testing_videos.txt`` with lines ``<label> <relative path>``, where in the official file
**1 means real and 0 means fake** (e.g. ``1 YouTube-real/00170.mp4``,
``0 Celeb-synthesis/id0_id16_0000.mp4``); every line is checked against its folder, so a list
with the opposite convention is refused rather than silently flipped. Listed videos are the
test split (the official protocol fixes only this list); the others are split into train/val
by target identity (``idX``: a swap ``idX_idY`` goes with idX's real videos, from which it was
made; idY's face may then appear in the other split) with :func:`~.manifest.split_by_group`;
``linked="drop"`` makes train and val identity-disjoint instead by leaving out the swaps whose
two identities fall in different splits. The official test videos share identities with the
others; ``disjoint_identities=True`` drops the non-test rows that share one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .manifest import ManifestError, ManifestRow, split_by_group, write_manifest
from .media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
"""Methods covered by the official pair splits; ``DeepFakeDetection`` may be asked for too."""
FFPP_COMPRESSIONS = ("raw", "c23", "c40")
CELEBDF_FOLDERS = {"Celeb-real": "real", "YouTube-real": "real", "Celeb-synthesis": "fake"}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"
_CELEBDF_LIST_LABELS = {"1": "real", "0": "fake"}  # the official file's convention


def ffpp_manifest(
    root: str | Path, *, compression: str = "c23", methods: Sequence[str] | None = None, splits_dir: str | Path | None = None
) -> list[ManifestRow]:
    """Per-video rows of a FaceForensics++ download with the official train/val/test splits.

    ``methods=None`` takes every method of :data:`FFPP_METHODS` present at ``compression``;
    naming a method whose folder is missing is an error. ``splits_dir`` holds ``train.json``,
    ``val.json`` and ``test.json`` (default: ``root``).
    """
    root = Path(os.path.abspath(root))
    if compression not in FFPP_COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(FFPP_COMPRESSIONS)}, got {compression!r}")
    known = (*FFPP_METHODS, "DeepFakeDetection")
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method names, e.g. [{methods!r}]")
    if methods is not None and (unknown := [m for m in methods if m not in known]):
        raise ValueError(f"unknown FF++ methods {unknown}; choose among {', '.join(known)}")
    split_of = _ffpp_splits(Path(splits_dir) if splits_dir is not None else root)
    originals = root / "original_sequences" / "youtube" / compression / "videos"
    rows = []
    for video in _videos(originals, what="FF++ originals"):
        if video.stem not in split_of:
            raise ManifestError(f"{video}: id {video.stem!r} is in none of train/val/test.json; are these the official split files?")
        rows.append(ManifestRow(str(video), "real", video_id=f"original/{video.stem}", source_id=video.stem, split=split_of[video.stem]))
    if methods is None:
        methods = [m for m in FFPP_METHODS if (root / "manipulated_sequences" / m / compression / "videos").is_dir()]
    for method in dict.fromkeys(methods):  # once each, in the order given
        if method == "DeepFakeDetection":
            rows += _dfd_rows(root, compression)
            continue
        for video in _videos(root / "manipulated_sequences" / method / compression / "videos", what=f"FF++ {method}"):
            target, source = _pair(video)
            where = {split_of.get(target), split_of.get(source)}
            if None in where or len(where) != 1:
                raise ManifestError(
                    f"{video}: pair {target}/{source} has splits {split_of.get(target)}/{split_of.get(source)}; "
                    "the split JSONs do not match this download"
                )
            rows.append(ManifestRow(str(video), "fake", mask=_mask(root, method, video), video_id=f"{method}/{video.stem}",
                                    source_id=f"{target}+{source}", split=where.pop()))
    return rows


def celebdf_manifest(
    root: str | Path, *, val_fraction: float = 0.1, seed: int = 0, linked: str = "target", disjoint_identities: bool = False
) -> list[ManifestRow]:
    """Per-video rows of a Celeb-DF v2 download: the official test list as ``test``, the rest
    split into train/val by identity (``val_fraction`` of the rows, deterministic per ``seed``;
    ``linked`` as in :func:`~.manifest.split_by_group`: ``target`` or ``drop``)."""
    root = Path(os.path.abspath(root))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if linked not in ("target", "drop"):
        raise ValueError(f"linked must be 'target' or 'drop' for Celeb-DF (its swaps link nearly every identity), got {linked!r}")
    test = _celebdf_test_list(root)
    rows, rest, found = [], [], set()
    for folder, label in CELEBDF_FOLDERS.items():
        for video in _videos(root / folder, what=f"Celeb-DF {folder}"):
            relative = f"{folder}/{video.name}"
            row = ManifestRow(str(video), label, video_id=f"{folder}/{video.stem}", source_id=_celebdf_ids(folder, video.stem))
            if relative in test:
                rows.append(dataclasses.replace(row, split="test"))
                found.add(relative)
            else:
                rest.append(row)
    if missing := sorted(set(test) - found):
        raise ManifestError(f"{root / CELEBDF_TEST_LIST}: {len(missing)} listed videos are not on disk, e.g. {missing[0]}")
    if disjoint_identities:
        seen = {identity for row in rows for identity in row.identities}
        rest = [row for row in rest if not seen.intersection(row.identities)]
    fractions = {"train": 1.0 - val_fraction, "val": val_fraction}
    rows += split_by_group(rest, fractions, key="source_id", seed=seed, linked=linked) if rest else []
    return sorted(rows, key=lambda row: row.path)


def folder_rows(root: str | Path, *, videos: bool = False) -> list[ManifestRow]:
    """Rows for ``root/real/**`` (label real) and ``root/fake/**`` (label fake), images only
    unless ``videos``; hidden files are skipped. A fake ``fake/<rel>.<ext>`` gets the mask
    ``masks/<rel>.png`` when it exists (``masks/`` beside ``fake/``); a mask file that matches no
    fake is an error (a naming mismatch would otherwise silently lose every mask)."""
    root = Path(os.path.abspath(root))
    suffixes = IMAGE_EXTENSIONS | (VIDEO_EXTENSIONS if videos else frozenset())
    if not (root / "real").is_dir() and not (root / "fake").is_dir():
        raise ManifestError(f"{root}: no 'real/' or 'fake/' folder; put real images in real/ and fakes in fake/")
    masks_dir, used = root / "masks", set()
    rows = []
    for label in ("real", "fake"):
        for file in _walk(root / label, suffixes):
            mask = ""
            if label == "fake":
                candidate = (masks_dir / file.relative_to(root / label)).with_suffix(".png")
                if candidate.is_file():
                    mask = str(candidate)
                    used.add(candidate)
            rows.append(ManifestRow(str(file), label, mask=mask))
    if not rows:
        raise ManifestError(f"{root}: real/ and fake/ hold no files with extensions {', '.join(sorted(suffixes))}")
    if masks_dir.is_dir() and (orphans := [m for m in _walk(masks_dir, frozenset({".png"})) if m not in used]):
        expected = orphans[0].relative_to(masks_dir).with_suffix("")
        raise ManifestError(f"{orphans[0]}: mask matches no fake (expected fake/{expected}.<ext>); {len(orphans)} such masks")
    return rows


BUILDERS = {"ffpp": ffpp_manifest, "celebdf": celebdf_manifest, "folder": folder_rows}


def build_manifest(kind: str, root: str | Path, out: str | Path, **options: Any) -> list[ManifestRow]:
    """Build the rows of dataset ``kind`` (``ffpp``, ``celebdf`` or ``folder``) found at ``root``
    with the builder's keyword ``options``, write them to the manifest ``out`` and return them."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose among {', '.join(BUILDERS)}")
    rows = BUILDERS[kind](root, **options)
    write_manifest(rows, out)
    return rows


def _ffpp_splits(folder: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split in ("train", "val", "test"):
        path = folder / f"{split}.json"
        try:
            pairs: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path}: split file not found; get train/val/test.json from the FaceForensics repository (dataset/splits)") from None
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(pairs, list) or not all(_is_id_pair(p) for p in pairs):
            raise ManifestError(f'{path}: expected a list of id pairs like [["071", "054"], ...]')
        for pair in pairs:
            for identity in pair:
                if split_of.setdefault(identity, split) != split:
                    raise ManifestError(f"{path}: id {identity!r} is also in {split_of[identity]}.json; an id belongs to one split")
    return split_of


def _is_id_pair(item: Any) -> bool:
    return isinstance(item, list) and len(item) == 2 and all(isinstance(i, str) and i for i in item)


def _pair(video: Path) -> tuple[str, str]:
    parts = video.stem.split("_")
    if len(parts) != 2 or not all(parts):
        raise ManifestError(f"{video}: expected a manipulated FF++ video named TARGET_SOURCE.mp4 (e.g. 004_982.mp4)")
    return parts[0], parts[1]


def _mask(root: Path, method: str, video: Path) -> str:
    mask = root / "manipulated_sequences" / method / "masks" / "videos" / video.name
    return str(mask) if mask.is_file() else ""


def _dfd_rows(root: Path, compression: str) -> list[ManifestRow]:
    rows = []
    for video in _videos(root / "original_sequences" / "actors" / compression / "videos", what="FF++ DeepFakeDetection originals"):
        actor = video.stem.split("__")[0]
        rows.append(ManifestRow(str(video), "real", video_id=f"actors/{video.stem}", source_id=f"actor{actor}"))
    for video in _videos(root / "manipulated_sequences" / "DeepFakeDetection" / compression / "videos", what="FF++ DeepFakeDetection"):
        actors = video.stem.split("__")[0].split("_")
        if len(actors) != 2 or not all(actors):
            raise ManifestError(f"{video}: expected a DeepFakeDetection video named AA_BB__scene__HASH.mp4")
        rows.append(ManifestRow(str(video), "fake", mask=_mask(root, "DeepFakeDetection", video),
                                video_id=f"DeepFakeDetection/{video.stem}", source_id="+".join(f"actor{a}" for a in actors)))
    return rows


def _celebdf_test_list(root: Path) -> dict[str, str]:
    path = root / CELEBDF_TEST_LIST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: not found; it ships with Celeb-DF v2 and fixes the official test videos") from None
    test: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[0] not in _CELEBDF_LIST_LABELS:
            raise ManifestError(f"{path}: line {number}: expected '<1 (real) or 0 (fake)> <folder>/<video>.mp4', got {line!r}")
        label, relative = _CELEBDF_LIST_LABELS[fields[0]], fields[1]
        folder = relative.split("/")[0]
        if CELEBDF_FOLDERS.get(folder) != label:
            raise ManifestError(f"{path}: line {number}: {relative} is labelled {fields[0]} ({label}) but {folder}/ holds "
                                f"{CELEBDF_FOLDERS.get(folder, 'no known')} videos; in the official list 1 = real, 0 = fake")
        if relative in test:
            raise ManifestError(f"{path}: line {number}: {relative} is listed twice")
        test[relative] = label
    if not test:
        raise ManifestError(f"{path}: lists no videos")
    return test


def _celebdf_ids(folder: str, stem: str) -> str:
    parts = stem.split("_")
    if folder == "YouTube-real":
        return f"youtube-{stem}"
    expected = 2 if folder == "Celeb-real" else 3
    if len(parts) != expected or not all(part.startswith("id") for part in parts[:-1]):
        raise ManifestError(f"{folder}/{stem}.mp4: expected a name like {'id0_0000' if expected == 2 else 'id0_id16_0000'}.mp4")
    return "+".join(parts[:-1])


def _videos(folder: Path, *, what: str) -> list[Path]:
    if not folder.is_dir():
        raise ManifestError(f"{folder}: folder of {what} not found; is the dataset root and layout right?")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mp4" and p.is_file() and not p.name.startswith("."))


def _walk(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
