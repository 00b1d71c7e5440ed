"""The dataset manifest: one CSV row per image (or video, or video frame), with its label and split.

Columns (header required, order free, only ``path`` and ``label`` mandatory, others may be
missing or empty):

``path``       the image or video; relative to the manifest's folder (absolute allowed).
``label``      ``real`` or ``fake``.
``mask``       soft forgery mask: a grayscale PNG (0 = untouched ... 255 = fully forged) of the
               image's size; for a *video* row the mask video of the same length (FF++ ships
               those). Empty: no mask known.
``video_id``   groups the rows (frames) of one video, e.g. ``Deepfakes/004_982``.
``source_id``  the identities in the row, separated by ``+`` (:data:`ID_SEPARATOR`), target
               first: an FF++ original ``004``, the manipulated pair ``004_982`` is ``004+982``;
               Celeb-DF ``id0+id16``. Ids may not contain ``+``.
``frame``      frame index (>= 0) for rows that are frames of a video; empty otherwise.
``split``      ``train``, ``val``, ``test`` or empty (unassigned).

In memory, :func:`read_manifest` returns absolute paths; :func:`write_manifest` writes paths
under the manifest's folder relative to it (so a dataset folder with its manifest can move),
others absolute. :func:`split_by_group` assigns splits by identity or video, never by frame.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..files import atomic_write_bytes

COLUMNS = ("path", "label", "mask", "video_id", "source_id", "frame", "split")
REQUIRED_COLUMNS = ("path", "label")
LABELS = ("real", "fake")
SPLITS = ("train", "val", "test")
ID_SEPARATOR = "+"
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row; see the module docstring for the meaning of each field."""

    path: str
    label: str
    mask: str = ""
    video_id: str = ""
    source_id: str = ""
    frame: int | None = None
    split: str = ""

    def __post_init__(self) -> None:
        for name in ("path", "label", "mask", "video_id", "source_id", "split"):
            if not isinstance(getattr(self, name), str):
                raise ManifestError(f"column '{name}': expected a string, got {type(getattr(self, name)).__name__}")
        if not self.path:
            raise ManifestError("column 'path': empty; every row needs a file")
        if self.label not in LABELS:
            raise ManifestError(f"column 'label': {self.label!r} is not 'real' or 'fake'")
        if self.split and self.split not in SPLITS:
            raise ManifestError(f"column 'split': {self.split!r} is not one of train, val, test or empty")
        if self.frame is not None and (isinstance(self.frame, bool) or not isinstance(self.frame, int) or self.frame < 0):
            raise ManifestError(f"column 'frame': {self.frame!r} is not a frame index >= 0 (or empty)")
        if self.source_id and not all(self.identities):
            raise ManifestError(f"column 'source_id': {self.source_id!r} has an empty id between '{ID_SEPARATOR}' separators")

    @property
    def identities(self) -> tuple[str, ...]:
        """The ids in ``source_id`` (target first); empty when unknown."""
        return tuple(self.source_id.split(ID_SEPARATOR)) if self.source_id else ()

    @property
    def is_fake(self) -> bool:
        return self.label == "fake"


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read and validate a manifest CSV; paths come back absolute (relative ones resolved
    against the manifest's folder). Errors are :class:`ManifestError` naming line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: cannot read the manifest ({error})") from None
    if "\x00" in text:
        raise ManifestError(f"{path}: contains NUL bytes; a manifest is a UTF-8 CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return _parse(reader, path, Path(os.path.abspath(path.parent)))
    except csv.Error as error:
        raise ManifestError(f"{path}: line {reader.line_num}: malformed CSV ({error})") from None


def _parse(reader: Any, path: Path, folder: Path) -> list[ManifestRow]:
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ManifestError(f"{path}: line 1: empty; expected a header with columns {', '.join(COLUMNS)}")
    _check_header(header, path)
    rows: list[ManifestRow] = []
    first_line: dict[tuple[str, int | None], int] = {}
    for cells in reader:
        line = reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != len(header):
            raise ManifestError(f"{path}: line {line}: {len(cells)} fields, but the header has {len(header)}")
        values = dict(zip(header, cells))
        try:
            row = ManifestRow(
                path=_absolute(values["path"], folder) if values["path"] else "",
                label=values["label"],
                mask=_absolute(values["mask"], folder) if values.get("mask") else "",
                video_id=values.get("video_id", ""),
                source_id=values.get("source_id", ""),
                frame=_parse_frame(values.get("frame", "")),
                split=values.get("split", ""),
            )
        except ManifestError as error:
            raise ManifestError(f"{path}: line {line}: {error}") from None
        key = (row.path, row.frame)
        if key in first_line:
            raise ManifestError(f"{path}: line {line}: column 'path': {values['path']!r} (frame {row.frame}) repeats line {first_line[key]}")
        first_line[key] = line
        rows.append(row)
    return rows


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> Path:
    """Write rows atomically as a manifest CSV (all columns, given order). Absolute paths under
    the manifest's folder are written relative to it, others absolute; a relative path in a row
    is taken as relative to the manifest's folder already. Returns the path written."""
    path = Path(path)
    folder = Path(os.path.abspath(path.parent))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    seen: set[tuple[str, int | None]] = set()
    for number, row in enumerate(rows):
        if not isinstance(row, ManifestRow):
            raise TypeError(f"row {number} is a {type(row).__name__}, expected a ManifestRow")
        key = (_absolute(row.path, folder), row.frame)
        if key in seen:
            raise ManifestError(f"row {number}: path {row.path!r} (frame {row.frame}) appears twice; a manifest lists each file once")
        seen.add(key)
        writer.writerow([
            _relative(row.path, folder), row.label, _relative(row.mask, folder) if row.mask else "",
            row.video_id, row.source_id, "" if row.frame is None else str(row.frame), row.split,
        ])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path


def filter_split(rows: Iterable[ManifestRow], *splits: str) -> list[ManifestRow]:
    """The rows whose split is one of ``splits`` (``""`` selects unassigned rows)."""
    unknown = [s for s in splits if s and s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"give one or more splits among {', '.join(SPLITS)} (or '' for unassigned), got {splits}")
    return [row for row in rows if row.split in splits]


def label_counts(rows: Iterable[ManifestRow]) -> dict[str, dict[str, int]]:
    """``{split: {"real": n, "fake": m}}`` in train, val, test, unassigned (``""``) order."""
    counts = Counter((row.split, row.label) for row in rows)
    present = [split for split in (*SPLITS, "") if counts[(split, "real")] + counts[(split, "fake")]]
    return {split: {label: counts[(split, label)] for label in LABELS} for split in present}


def format_summary(rows: Sequence[ManifestRow]) -> str:
    """A small text table of real/fake counts per split, for the command line."""
    lines = [f"{'split':<10} {'real':>8} {'fake':>8} {'total':>8}"]
    for split, counts in label_counts(rows).items():
        lines.append(f"{split or '(none)':<10} {counts['real']:>8} {counts['fake']:>8} {counts['real'] + counts['fake']:>8}")
    lines.append(f"{'all':<10} {sum(not r.is_fake for r in rows):>8} {sum(r.is_fake for r in rows):>8} {len(rows):>8}")
    return "\n".join(lines)


def split_by_group(
    rows: Sequence[ManifestRow],
    fractions: Mapping[str, float] | None = None,
    *,
    key: str = "source_id",
    seed: int = 0,
    linked: str = "merge",
) -> list[ManifestRow]:
    """Assign ``split`` by identity (``key="source_id"``) or by video (``key="video_id"``), never
    by frame: all rows of a group land in the same split. Existing splits are overwritten.

    A row naming several identities (an FF++ pair ``004+982``) links them. ``linked="merge"``
    keeps linked identities together (groups are the connected components: an FF++ pair, its two
    originals and all its manipulations share a split; nothing is dropped, but a densely linked
    dataset collapses into few groups). ``linked="drop"`` places each identity on its own and
    drops the rows whose identities land in different splits (identity-disjoint, at the cost of
    cross-split swaps). ``linked="target"`` places each row with its first (target) identity
    only: nothing is dropped, a swap shares a split with its target's real videos, but its
    donor's face may appear in another split (for densely cross-swapped sets such as Celeb-DF).
    With ``key="video_id"`` a row without a video id is its own group.

    Groups are ordered by SHA-256 of ``(seed, group name)`` (independent of row order and of the
    process) and cut at the cumulative ``fractions`` of rows; a split may stay empty when there
    are few groups. Returns new rows in input order (minus dropped ones).
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    _check_fractions(fractions)
    if key not in ("source_id", "video_id"):
        raise ValueError(f"key must be 'source_id' or 'video_id', got {key!r}")
    if linked not in ("merge", "drop", "target"):
        raise ValueError(f"linked must be 'merge', 'drop' or 'target', got {linked!r}")
    ids = [_group_ids(row, number, key) for number, row in enumerate(rows)]
    if linked == "merge":
        parent: dict[str, str] = {}
        for row_ids in ids:
            for other in row_ids[1:]:
                _union(parent, row_ids[0], other)
        ids = [(_find(parent, row_ids[0]),) for row_ids in ids]
    elif linked == "target":
        ids = [row_ids[:1] for row_ids in ids]
    weights: Counter[str] = Counter()
    for row_ids in ids:
        for identity in set(row_ids):
            weights[identity] += 1
    assignment = _assign(weights, fractions, seed)
    out = []
    for row, row_ids in zip(rows, ids):
        splits = {assignment[identity] for identity in row_ids}
        if len(splits) == 1:
            out.append(dataclasses.replace(row, split=splits.pop()))
    return out


def _assign(weights: Mapping[str, int], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Group -> split: groups in seeded-hash order, each to the split its weight midpoint falls in."""
    order = sorted(weights, key=lambda group: hashlib.sha256(f"{seed}\x00{group}".encode()).digest())
    names = [split for split in SPLITS if fractions.get(split, 0.0) > 0]
    bounds, total = [], 0.0
    for split in names:
        total += fractions[split]
        bounds.append(total)
    bounds[-1] = float("inf")
    grand = sum(weights.values())
    assignment, done = {}, 0
    for group in order:
        middle = (done + weights[group] / 2) / grand
        assignment[group] = names[next(k for k, bound in enumerate(bounds) if middle < bound)]
        done += weights[group]
    return assignment


def _group_ids(row: ManifestRow, number: int, key: str) -> tuple[str, ...]:
    if key == "video_id":
        return (row.video_id or f"\x00{row.path}",)
    if not row.identities:
        raise ManifestError(f"row {number} ({row.path}) has no source_id; fill it in or split by key='video_id'")
    return row.identities


def _find(parent: dict[str, str], item: str) -> str:
    root = item
    while parent.get(root, root) != root:
        root = parent[root]
    while parent.get(item, item) != root:  # path compression
        parent[item], item = root, parent[item]
    return root


def _union(parent: dict[str, str], a: str, b: str) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:  # the smaller name becomes the root: the group's name does not depend on row order
        parent[max(ra, rb)] = min(ra, rb)


def _check_fractions(fractions: Mapping[str, float]) -> None:
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ValueError(f"fractions has unknown splits {unknown}; use train, val, test")
    if any(value < 0 for value in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {dict(fractions)}")


def _check_header(header: list[str], path: Path) -> None:
    seen: set[str] = set()
    for column, name in enumerate(header, start=1):
        if name in seen:
            raise ManifestError(f"{path}: line 1: column {name!r} appears twice in the header")
        if name not in COLUMNS:
            raise ManifestError(f"{path}: line 1: unknown column {name!r} (header field {column}); allowed: {', '.join(COLUMNS)}")
        seen.add(name)
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            raise ManifestError(f"{path}: line 1: missing required column {name!r} in the header")


def _parse_frame(text: str) -> int | None:
    if text == "":
        return None
    if not (text.isascii() and text.isdigit()):
        raise ManifestError(f"column 'frame': {text!r} is not a frame index >= 0 (or empty)")
    return int(text)


def _absolute(path: str, folder: Path) -> str:
    return os.path.normpath(folder / path)  # an absolute `path` replaces `folder`


def _relative(path: str, folder: Path) -> str:
    absolute = Path(_absolute(path, folder))
    return absolute.relative_to(folder).as_posix() if absolute.is_relative_to(folder) else str(absolute)


def manifest_rows(source: str | Path | Sequence[ManifestRow], what: str = "manifest", split: str | None = None) -> list[ManifestRow]:
    """The rows of a manifest file or of a sequence of rows, of ``split`` when given; none is an error
    (``what`` names the source in messages)."""
    if isinstance(source, (str, Path)):
        rows = read_manifest(source)
    elif isinstance(source, Sequence) and all(isinstance(row, ManifestRow) for row in source):
        rows = list(source)
    else:
        raise TypeError(f"{what} must be a manifest path or a sequence of ManifestRow, got {type(source).__name__}")
    rows = rows if split is None else filter_split(rows, split)
    if not rows:
        raise ValueError(f"the {what} has no rows" + (f" in split {split!r}" if split is not None else ""))
    return rows
