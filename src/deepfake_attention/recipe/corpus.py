"""The real-face corpus and its identity splits.

The corpus is a folder with ``manifest.csv`` (one row per photo or video: ``file``, ``kind``,
``group``, ``people``, ``identities`` separated by ``;``, ``license`` ...). Splits are by
*person*: files that share an identity are joined (transitively, so a group photo keeps all of
its people together), and each joined set goes whole to train, calibration or test. Sets are
stratified over the corpus's source groups (each set counts for the group most of its faces
come from) and dealt, in a seeded order, to the split furthest below its share of faces, so
every split gets its share of every group. The split is a pure function of the manifest and the
seed, which the model card records.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "calibration", "test")
DEFAULT_FRACTIONS = {"train": 0.6, "calibration": 0.2, "test": 0.2}
REQUIRED_COLUMNS = ("file", "kind", "group", "people", "identities")


@dataclass(frozen=True)
class CorpusFile:
    """One photo or video of real people."""

    file: str
    """Path relative to the corpus folder (or absolute for files from elsewhere)."""
    kind: str
    """``"image"`` or ``"video"``."""
    group: str
    """Source group (``photo``, ``low_res``, ``old_or_degraded``, ``group_photo``, ``video`` ...)."""
    people: int
    """Clearly visible faces (an estimate for large groups)."""
    identities: tuple[str, ...]
    license: str = ""

    @property
    def faces(self) -> int:
        return max(1, self.people)


def read_corpus(folder: str | Path) -> list[CorpusFile]:
    """The rows of ``folder/manifest.csv``; a missing folder, file or column is a clear error."""
    path = Path(folder) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the recipe needs the real-face corpus (a folder with manifest.csv)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}")
        files = []
        for line, row in enumerate(reader, start=2):
            identities = tuple(i.strip() for i in row["identities"].split(";") if i.strip())
            if not identities or row["kind"] not in ("image", "video"):
                raise ValueError(f"{path}:{line}: every row needs a kind (image|video) and at least one identity")
            files.append(CorpusFile(row["file"], row["kind"], row["group"], int(row["people"] or 1), identities, row.get("license", "")))
    return files


def identity_sets(files: list[CorpusFile]) -> list[list[int]]:
    """Indices of ``files`` joined by shared identities (union-find), each set sorted, sets in order of first file."""
    parent = list(range(len(files)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[str, int] = {}
    for k, item in enumerate(files):
        for identity in item.identities:
            if identity in owner:
                a, b = root(owner[identity]), root(k)
                parent[max(a, b)] = min(a, b)
            else:
                owner[identity] = k
    sets: dict[int, list[int]] = {}
    for k in range(len(files)):
        sets.setdefault(root(k), []).append(k)
    return list(sets.values())


def _stream(seed: int, name: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), digest]))


def split_by_identity(files: list[CorpusFile], *, seed: int, fractions: dict[str, float] | None = None) -> list[str]:
    """The split of each file (``train``, ``calibration`` or ``test``), in the order of ``files``.

    No identity is in two splits. Within each source group, identity sets are dealt in a seeded
    order to the split whose share of that group's faces is furthest below its fraction.
    """
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    if set(fractions) != set(SPLITS) or any(v < 0 for v in fractions.values()) or not abs(sum(fractions.values()) - 1) < 1e-9:
        raise ValueError(f"fractions must give {SPLITS} non-negative shares summing to 1, got {fractions}")
    by_group: dict[str, list[list[int]]] = {}
    for members in identity_sets(files):
        faces = Counter()
        for k in members:
            faces[files[k].group] += files[k].faces
        group = min(faces, key=lambda g: (-faces[g], g))
        by_group.setdefault(group, []).append(members)
    split = [""] * len(files)
    for group in sorted(by_group):
        sets = by_group[group]
        order = _stream(seed, group).permutation(len(sets))
        given = dict.fromkeys(SPLITS, 0)
        for position in order:
            members = sets[int(position)]
            total = sum(given.values()) + sum(files[k].faces for k in members)
            target = max(SPLITS, key=lambda s: (fractions[s] * total - given[s], -SPLITS.index(s)))
            for k in members:
                split[k] = target
            given[target] += sum(files[k].faces for k in members)
    return split


def split_summary(files: list[CorpusFile], split: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{split: {group: {"files", "faces", "identities"}}}`` for the model card."""
    summary: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    seen: dict[tuple[str, str], set[str]] = {}
    for item, name in zip(files, split):
        entry = summary[name].setdefault(item.group, {"files": 0, "faces": 0, "identities": 0})
        entry["files"] += 1
        entry["faces"] += item.faces
        seen.setdefault((name, item.group), set()).update(item.identities)
        entry["identities"] = len(seen[(name, item.group)])
    return summary
