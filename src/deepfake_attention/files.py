"""Files this package writes and checks: atomic writes, content hashes, file-name-safe stems, and
the one written form of a path (:func:`display_path`, :func:`path_fields`).

A leaf: it imports nothing of the package, so every layer may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, data: Any) -> None:
    """:func:`atomic_write_bytes` of pretty-printed JSON."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_stem(path: str | Path, limit: int = 60) -> str:
    """A file-name-safe version of a path's stem (letters, digits, ``.``, ``_``, ``-``).

    Works on any name, also one holding bytes that are not UTF-8 (surrogate escapes become ``_``
    like every other unusual character); two names may share a stem, so callers add a hash of
    :func:`raw_path_bytes`.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem).strip("._") or "input"
    return stem[:limit]


def raw_path_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path`` as the file system holds them (:func:`os.fsencode`): what to hash.

    A name read from the disk that is not valid UTF-8 reaches Python with surrogate escapes
    (``\\udce9`` for the byte 0xE9); they turn back into their bytes here. Any other lone
    surrogate (never produced by the file system) is encoded with ``surrogatepass``.
    """
    text = os.fspath(path)
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as written in every output (rows, CSV, JSON, ``run.json``, reports, panel titles).

    Valid UTF-8 names are unchanged. In a name that is not UTF-8, each undecodable byte is written
    as ``\\xNN`` (Python's ``backslashreplace``): ``café.jpg`` saved by a Latin-1 system (the byte
    0xE9 for the é) is written ``caf\\xe9.jpg``, with a literal backslash. That form is not unique (a file may be
    named so literally), so the rows add :func:`path_bytes_hex` (see :func:`path_fields`).
    Any text works here, also a command line holding such names.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return raw_path_bytes(text).decode("utf-8", "backslashreplace")


def path_bytes_hex(path: str | os.PathLike[str]) -> str | None:
    """The hex of :func:`raw_path_bytes` when ``path`` is not valid UTF-8 (else None): the exact name."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        return raw_path_bytes(text).hex()


def path_fields(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """``{"path": display_path(path), "path_bytes": path_bytes_hex(path)}``: how rows name a file.

    Two different files always differ in ``(path, path_bytes)``, even when their display forms are
    equal; ``bytes.fromhex(path_bytes)`` (or ``os.fsencode(path)`` when it is None) opens the file.
    """
    return {"path": display_path(path), "path_bytes": path_bytes_hex(path)}
