"""Result rows of ``analyze`` and their files: ``results.jsonl``, ``results.csv``, ``faces.csv``.

The schema is DESIGN.md's contract: one row per input, in input order; per-face detections in
``results.jsonl`` and ``faces.csv``; ``prob_fake`` and ``label`` empty unless ``status == "ok"``.
``path`` is always :func:`~..files.display_path`'s form and ``path_bytes`` the hex of the name's
bytes when it is not UTF-8 (else empty), so every file can be written and no two inputs share both.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ..files import display_path, path_fields

STATUSES = ("ok", "no_face", "error")
ROW_FIELDS = (
    "path", "kind", "status", "error", "prob_fake", "label", "threshold", "faces",
    "model_sha256", "input_sha256", "seconds", "panel", "model_trained", "path_bytes",
)
FACE_FIELDS = ("path", "face_index", "x0", "y0", "x1", "y1", "det_score", "prob_fake", "label", "attention_png", "gradcampp_png", "words",
               "path_bytes")


def points_json(points: Any) -> list[list[float]] | None:
    """Landmarks [N, 2] as JSON-ready ``[[x, y], ...]`` (0.01 px), or None."""
    return None if points is None else [[round(float(x), 2), round(float(y), 2)] for x, y in points]


@dataclass
class Detection:
    """One face of an input: box in original pixels, its calibrated score and its rendered maps."""

    face_index: int
    box: tuple[int, int, int, int]
    det_score: float | None
    prob_fake: float
    attention_png: str | None = None
    gradcampp_png: str | None = None
    words: str | None = None
    """One-line summary of where the evidence lies (explain/words.py); left/right are the person's."""
    regions: dict[str, float] | None = None
    """Share of the map's energy per facial region (eyes, nose, mouth, boundary, skin, background)."""
    landmarks5: list[list[float]] | None = None
    """The detector's five landmarks ``[[x, y] x 5]`` in original pixels (left eye, right eye, nose, left and
    right mouth corner as seen in the image; MTCNN), else None."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["box"] = list(self.box)
        return data


@dataclass
class ResultRow:
    """One input's outcome. ``extra`` holds kind-specific additions (video ``frames``, ``tracks``).

    Built with the path as the file system gave it, the row keeps its written form: ``path``
    becomes :func:`~..files.display_path` and ``path_bytes`` the hex of a name that is not UTF-8
    (a row read back from JSON, with ``path_bytes`` given, is kept as it is).
    """

    path: str
    kind: str
    status: str
    error: str | None = None
    prob_fake: float | None = None
    label: str | None = None
    threshold: float | None = None
    faces: int = 0
    model_sha256: str = ""
    input_sha256: str | None = None
    seconds: float = 0.0
    panel: str | None = None
    model_trained: bool = True
    detections: list[Detection] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    path_bytes: str | None = None
    """Hex of the name's bytes when it is not valid UTF-8 (``path`` then shows them as ``\\xNN``)."""

    def __post_init__(self) -> None:
        if self.path_bytes is None:
            fields = path_fields(self.path)
            self.path, self.path_bytes = fields["path"], fields["path_bytes"]
        if self.error is not None:
            self.error = display_path(self.error)  # a sentence that may quote a name
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status != "ok" and (self.prob_fake is not None or self.label is not None):
            raise ValueError("prob_fake and label are only set on rows with status 'ok'")

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in ROW_FIELDS}
        data["seconds"] = round(self.seconds, 4)
        data["detections"] = [d.to_json() for d in self.detections]
        data.update(self.extra)
        return data

    def to_csv(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in ROW_FIELDS}
        data["seconds"] = f"{self.seconds:.4f}"
        if self.prob_fake is not None:
            data["prob_fake"] = f"{self.prob_fake:.6f}"
        return {key: "" if value is None else value for key, value in data.items()}

    def face_rows(self) -> list[dict[str, Any]]:
        rows = []
        for det in self.detections:
            x0, y0, x1, y1 = det.box
            label = "fake" if self.threshold is not None and det.prob_fake >= self.threshold else "real"
            rows.append({
                "path": self.path, "path_bytes": self.path_bytes or "", "face_index": det.face_index, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                "det_score": "" if det.det_score is None else f"{det.det_score:.4f}",
                "prob_fake": f"{det.prob_fake:.6f}", "label": label,
                "attention_png": det.attention_png or "", "gradcampp_png": det.gradcampp_png or "", "words": det.words or "",
            })
        return rows


class ResultWriter:
    """Appends rows to the three result files as they come, flushing each, and counts statuses."""

    def __init__(self, out_dir: str | Path, *, append: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.counts: Counter[str] = Counter()
        mode = "a" if append else "w"
        self._jsonl: IO[str] = open(self.out_dir / "results.jsonl", mode, encoding="utf-8")
        self._csv_file: IO[str] = open(self.out_dir / "results.csv", mode, newline="", encoding="utf-8")
        self._faces_file: IO[str] = open(self.out_dir / "faces.csv", mode, newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=ROW_FIELDS)
        self._faces = csv.DictWriter(self._faces_file, fieldnames=FACE_FIELDS)
        if not append or self._csv_file.tell() == 0:
            self._csv.writeheader()
        if not append or self._faces_file.tell() == 0:
            self._faces.writeheader()

    def write(self, row: ResultRow) -> None:
        self._jsonl.write(json.dumps(row.to_json()) + "\n")
        self._csv.writerow(row.to_csv())
        for face in row.face_rows():
            self._faces.writerow(face)
        for handle in (self._jsonl, self._csv_file, self._faces_file):
            handle.flush()
        self.counts[row.status] += 1

    def close(self) -> None:
        for handle in (self._jsonl, self._csv_file, self._faces_file):
            handle.close()

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` as dicts, in file order."""
    path = Path(out_dir) / "results.jsonl"
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
