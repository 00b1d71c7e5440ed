"""Real face crops on disk: :class:`FaceRecord` (a crop and what is known of it), written into a
folder as ``crops/<face>.png`` with one ``faces.jsonl`` line each (:func:`save_face`,
:func:`write_faces`) and read back (:func:`read_faces`); :func:`person_weights` weighs people, not crops.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..files import atomic_write_bytes
from .faces import FaceCrop


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


def read_faces(folder: str | Path) -> list[FaceRecord]:
    """The :class:`FaceRecord` list of a :func:`~.synth_writer.synthesize` folder, crop paths made absolute."""
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
    write_png(out / relative, crop)
    points = None if face.landmarks is None else ((face.landmarks - np.float32([cx, cy])) * np.float32(scale)).round(2).tolist()
    box = tuple(int(round((v - o) * scale)) for v, o in zip(face.box, (cx, cy, cx, cy)))
    return FaceRecord(relative.as_posix(), box, points, source_id, video_id, frame, person)  # type: ignore[arg-type]


def write_faces(out: Path, faces: Sequence[FaceRecord]) -> Path:
    """``out/faces.jsonl``: one line per face (what :func:`read_faces` reads back)."""
    return write_lines(out / "faces.jsonl", [json.dumps(dataclasses.asdict(f)) for f in faces])


def write_png(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a PNG at ``path``, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    """Write ``lines`` (one per line) to ``path`` atomically; returns ``path``."""
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode())
    return path
