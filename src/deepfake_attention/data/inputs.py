"""Finding the inputs of a run: files as given, folders walked recursively in sorted order, and
every entry passed over listed with the reason.

The walk never opens a file (a FIFO would block it forever): it learns what each entry is from
``stat``. Symbolic links to files are followed; symbolic links to folders are *listed, not
followed* (so no loop can form; name such a folder on the command line to analyse it). A folder
that holds the results of a run of this tool (its ``run.json``, or the journal ``parts/manifest.json``
of an unfinished run), and the folders passed as ``exclude`` (the run's own ``--out``), are
listed and not searched, so a run never analyses its own outputs.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import path_fields
from .media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, special_file

MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
RUN_MARKERS = (("run.json", ("command", "counts", "exit_code", "package_version")), ("parts/manifest.json", ("fingerprint",)))
"""Files (and the keys of their JSON object) that mark a folder as the output of an ``analyze`` run."""
_MAX_MARKER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class InputItem:
    """One input of a run: ``path`` as the file system gave it (it opens the file; rows write it with
    :func:`~..files.path_fields`), ``kind`` guessed from its name."""

    path: str
    kind: str


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of an input folder that is not an input, and why (a phrase a person understands)."""

    path: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """``{"path", "path_bytes", "reason"}``, the path in the written form of result rows."""
        return {**path_fields(self.path), "reason": self.reason}


def kind_of(path: str | Path) -> str:
    """``"video"`` for video file extensions, ``"image"`` for everything else."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def discover(inputs: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> tuple[list[InputItem], list[SkippedEntry]]:
    """Expand ``inputs`` into items and the entries of their folders passed over, with reasons.

    A file named explicitly is always an item (a wrong type, a FIFO or a missing file becomes an
    error row later, without being opened); so is a folder that is missing (an error row). Inside a
    folder, regular files (or links to them) with image or video extensions are items, in sorted
    order (a folder's entries sorted by name, each sub-folder expanded in place); everything else
    is a :class:`SkippedEntry`: hidden names, other extensions, FIFOs, sockets, devices, broken
    links, link loops, links to folders, entries that cannot be examined, folders that cannot be
    listed, the ``exclude`` folders and output folders of earlier runs (module doc). Duplicates are
    kept once.
    """
    items: list[InputItem] = []
    skipped: list[SkippedEntry] = []
    seen: set[str] = set()
    excluded = {_identity(path) for path in exclude} - {None}

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            items.append(InputItem(path, kind_of(path)))

    for raw in inputs:
        path = str(Path(raw))  # "in/", "./in" and "in" name the same rows
        if not os.path.isdir(path):
            add(path)
            continue
        for entry in _walk(path, excluded):
            if isinstance(entry, SkippedEntry):
                skipped.append(entry)
            else:
                add(entry)
    return items, [entry for entry in skipped if entry.path not in seen]  # a FIFO also named explicitly is an (error) row


def _walk(root: str, excluded: set[tuple[int, int]]) -> Iterator[str | SkippedEntry]:
    """The media files under ``root`` (paths) and the entries passed over, in sorted order.

    Depth first with a stack of folders, not recursion: an archive nested a thousand folders deep
    is walked like any other."""
    stack = [_entries(root, excluded)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif isinstance(entry, _Folder):
            stack.append(_entries(entry.path, excluded))
        else:
            yield entry


@dataclass(frozen=True)
class _Folder:
    path: str


def _entries(folder: str, excluded: set[tuple[int, int]]) -> Iterator[str | SkippedEntry | _Folder]:
    """One folder's entries in name order: media files, sub-folders to walk, entries passed over."""
    reason = _folder_reason(folder, excluded)
    if reason is not None:
        yield SkippedEntry(folder, reason)
        return
    try:
        names = sorted(_list_folder(folder))
    except OSError as error:
        yield SkippedEntry(folder, f"the folder cannot be listed ({_why(error)})")
        return
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith("."):
            yield SkippedEntry(path, "hidden (the name starts with '.')")
            continue
        link = False
        try:
            info = _stat(path, follow_symlinks=False)
            link = stat.S_ISLNK(info.st_mode)
            if link:
                info = _stat(path, follow_symlinks=True)
        except OSError as error:
            yield SkippedEntry(path, _stat_failure(error, link=link))
            continue
        if stat.S_ISDIR(info.st_mode):
            yield SkippedEntry(path, "a symbolic link to a folder: not followed (name the folder itself to analyse it)") if link else _Folder(path)
        elif stat.S_ISREG(info.st_mode):
            suffix = Path(name).suffix.lower()
            yield path if suffix in MEDIA_EXTENSIONS else SkippedEntry(path, f"not an image or video file name (extension {suffix or 'none'})")
        else:
            yield SkippedEntry(path, f"{special_file(info.st_mode) or 'an unknown kind of file'}, not a regular file: not opened")


def _list_folder(folder: str) -> list[str]:
    """The names in ``folder`` (a seam for tests: an unreadable folder raises :class:`PermissionError`)."""
    return os.listdir(folder)


def _stat(path: str, *, follow_symlinks: bool) -> os.stat_result:
    """``os.stat`` (a seam for tests: an entry that cannot be examined raises :class:`OSError`)."""
    return os.stat(path, follow_symlinks=follow_symlinks)


def _stat_failure(error: OSError, *, link: bool) -> str:
    if link and isinstance(error, FileNotFoundError):
        return "a broken symbolic link (its target does not exist)"
    if link and error.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    return f"cannot be examined ({_why(error)})"


def _why(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _folder_reason(folder: str, excluded: set[tuple[int, int]]) -> str | None:
    """Why ``folder`` is not searched (this run's output folder, an earlier run's), or None."""
    if excluded and _identity(folder) in excluded:
        return "the output folder of this run (--out): its files are not inputs"
    for marker, keys in RUN_MARKERS:
        if _is_marker(os.path.join(folder, marker), keys):
            return f"the output folder of an earlier deepfake-attention run (it holds {marker}): its files are not inputs"
    return None


def _is_marker(path: str, keys: tuple[str, ...]) -> bool:
    """Whether ``path`` is a regular file holding a JSON object with every key of ``keys``."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_MARKER_BYTES:
            return False
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(key in data for key in keys)
