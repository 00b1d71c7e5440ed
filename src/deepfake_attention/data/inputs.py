"""Finding the inputs of a run: files as given, folders walked recursively in sorted order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


@dataclass(frozen=True)
class InputItem:
    """One input of a run: ``path`` as reported in result rows, ``kind`` guessed from its name."""

    path: str
    kind: str


def kind_of(path: str | Path) -> str:
    """``"video"`` for video file extensions, ``"image"`` for everything else."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def discover(inputs: Iterable[str | Path]) -> tuple[list[InputItem], list[str]]:
    """Expand ``inputs`` into items and the files skipped inside folders (non-media or hidden).

    A file named explicitly is always an item (a wrong type becomes an error row later); inside a
    folder only files with image or video extensions are taken, the others are listed as
    skipped so that nothing disappears without a trace. Duplicates are kept once.
    """
    items: list[InputItem] = []
    skipped: list[str] = []
    seen: set[str] = set()
    media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

    def add(path: Path) -> None:
        key = str(path)
        if key not in seen:
            seen.add(key)
            items.append(InputItem(key, kind_of(path)))

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = child.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or child.suffix.lower() not in media:
                    skipped.append(str(child))
                else:
                    add(child)
        else:
            add(path)
    return items, skipped
