"""``analyze``: inputs -> decode and find faces (DataLoader workers) -> batched model and
Grad-CAM++ -> rendered maps -> ordered result rows, ``run.json`` and an HTML report."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import Preprocess, atomic_write_json
from .data.faces import FaceCrop, find_faces
from .data.media import DEFAULT_MAX_PIXELS, MediaError, decode_image, read_bytes
from .detector import Detector, FacePrediction
from .explain.render import FaceView, map_png, render_panel, safe_stem
from .inputs import InputItem, discover
from .results import Detection, ResultRow, ResultWriter

SAVE_MAPS = ("none", "panel", "all")


@dataclass(frozen=True)
class AnalyzeOptions:
    """The knobs of a run (DESIGN.md): validated on construction."""

    batch_size: int = 16
    workers: int = 0
    device: str = "auto"
    cam: bool = True
    save_maps: str = "panel"
    threshold: float | None = None
    face_detect: bool = True
    fail_on_no_face: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool | None = None
    """None: a progress bar only when stderr is a terminal."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.save_maps not in SAVE_MAPS:
            raise ValueError(f"save_maps must be one of {SAVE_MAPS}, got {self.save_maps!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


@dataclass
class RunSummary:
    """What a run produced: its rows (in input order), status counts, exit code and files."""

    out_dir: Path
    rows: list[ResultRow]
    counts: dict[str, int]
    skipped: list[str]
    exit_code: int
    report: Path
    untrained: bool = False


@dataclass
class LoadedInput:
    """An input after decoding and face finding (done in a DataLoader worker)."""

    index: int
    item: InputItem
    input_sha256: str | None = None
    faces: list[FaceCrop] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


class _InputLoader(Dataset):
    """Decodes inputs and finds their faces; every failure is kept as the item's error."""

    def __init__(self, items: Sequence[InputItem], options: AnalyzeOptions, preprocess: Preprocess) -> None:
        self.items = items
        self.options = options
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> LoadedInput:
        start = time.perf_counter()
        item = self.items[index]
        loaded = LoadedInput(index=index, item=item)
        try:
            data = read_bytes(item.path)
            loaded.input_sha256 = hashlib.sha256(data).hexdigest()
            if item.kind == "video":
                raise MediaError("video analysis is not available in this version; pass images")
            image = decode_image(data, max_pixels=self.options.max_pixels)
            loaded.faces = find_faces(image, self.preprocess.detector, self.preprocess.crop_scale, enabled=self.options.face_detect)
        except MediaError as error:
            loaded.error = str(error)
        loaded.seconds = time.perf_counter() - start
        return loaded


def _identity(sample: LoadedInput) -> LoadedInput:
    return sample


def rendered_name(path: str, suffix: str = "") -> str:
    """``<stem>-<hash8><suffix>.png``: the hash of the input path keeps same-named files apart."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"{safe_stem(path)}-{digest}{suffix}.png"


class _Renderer:
    """Writes panels and per-face maps under the output folder; returns paths relative to it."""

    def __init__(self, out_dir: Path, options: AnalyzeOptions, threshold: float, untrained: bool) -> None:
        self.out_dir, self.options, self.threshold, self.untrained = out_dir, options, threshold, untrained

    def _save(self, image: Any, folder: str, name: str) -> str:
        target = self.out_dir / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG", optimize=False)
        return f"{folder}/{name}"

    def render(self, loaded: LoadedInput, predictions: list[FacePrediction], detections: list[Detection]) -> str | None:
        if self.options.save_maps == "none":
            return None
        if self.options.save_maps == "all":
            for det, pred in zip(detections, predictions):
                det.attention_png = self._save(map_png(pred.attention), "attention", rendered_name(loaded.item.path, f"-f{det.face_index}"))
                if pred.gradcampp is not None:
                    det.gradcampp_png = self._save(map_png(pred.gradcampp), "gradcampp", rendered_name(loaded.item.path, f"-f{det.face_index}"))
        views = [
            FaceView(pred.crop, pred.attention, pred.gradcampp, pred.prob_fake, "fake" if pred.prob_fake >= self.threshold else "real")
            for pred in predictions
        ]
        panel = render_panel(views, self.threshold, title=Path(loaded.item.path).name, untrained=self.untrained)
        return self._save(panel, "panels", rendered_name(loaded.item.path))


def analyze(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    model: str | Path | Detector | None = None,
    command: str | None = None,
    **options: Any,
) -> RunSummary:
    """Analyze image files and folders; write rows, maps, ``run.json`` and ``report.html`` to ``out_dir``.

    Args:
        inputs: files and folders (walked recursively, sorted).
        out_dir: where results go; rendered file paths in the rows are relative to it.
        model: a checkpoint directory or a loaded :class:`Detector` (default: the shipped model).
        command: the command line to record in ``run.json``.
        **options: fields of :class:`AnalyzeOptions`.

    Returns a :class:`RunSummary`; ``exit_code`` is 1 when any row is an error (or ``no_face``
    with ``fail_on_no_face``), else 0.
    """
    opts = AnalyzeOptions(**options)
    started = datetime.now(timezone.utc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = model if isinstance(model, Detector) else Detector.load(model, device=opts.device)
    threshold = detector.threshold if opts.threshold is None else opts.threshold
    items, skipped = discover(inputs)
    renderer = _Renderer(out_dir, opts, threshold, untrained=not detector.trained)
    loader = DataLoader(
        _InputLoader(items, opts, detector.config.preprocess),
        batch_size=None,
        num_workers=opts.workers,
        collate_fn=_identity,
        prefetch_factor=4 if opts.workers else None,
        persistent_workers=False,
    )
    rows: list[ResultRow] = []
    progress = tqdm(total=len(items), desc="analyze", unit="file", disable=(not opts.progress) if opts.progress is not None else None)
    with ResultWriter(out_dir) as writer:
        pending: list[LoadedInput] = []
        pending_faces = 0
        for loaded in loader:
            pending.append(loaded)
            pending_faces += len(loaded.faces)
            if pending_faces >= opts.batch_size:
                rows += _score_and_write(pending, detector, opts, threshold, renderer, writer)
                progress.update(len(pending))
                pending, pending_faces = [], 0
        rows += _score_and_write(pending, detector, opts, threshold, renderer, writer)
        progress.update(len(pending))
    progress.close()
    counts = {status: writer.counts.get(status, 0) for status in ("ok", "no_face", "error")}
    failed = counts["error"] > 0 or (opts.fail_on_no_face and counts["no_face"] > 0)
    from .report import write_analysis_report

    summary = RunSummary(out_dir, rows, counts, skipped, 1 if failed else 0, out_dir / "report.html", untrained=not detector.trained)
    _write_run_json(summary, detector, opts, threshold, command, started, [str(i) for i in inputs] if not isinstance(inputs, (str, Path)) else [str(inputs)])
    write_analysis_report(summary, detector, threshold)
    return summary


def _score_and_write(
    pending: list[LoadedInput], detector: Detector, opts: AnalyzeOptions, threshold: float, renderer: _Renderer, writer: ResultWriter
) -> list[ResultRow]:
    crops = [face.crop for loaded in pending for face in loaded.faces]
    start = time.perf_counter()
    predictions: list[FacePrediction] = []
    for begin in range(0, len(crops), opts.batch_size):
        predictions += detector.predict(crops[begin : begin + opts.batch_size], cam=opts.cam)
    per_face = (time.perf_counter() - start) / max(1, len(crops))
    rows, cursor = [], 0
    for loaded in pending:
        faces = loaded.faces
        preds = predictions[cursor : cursor + len(faces)]
        cursor += len(faces)
        row = _make_row(loaded, preds, detector, threshold, renderer, per_face)
        writer.write(row)
        rows.append(row)
    return rows


def image_result(
    *, path: str, faces: Sequence[FaceCrop], predictions: Sequence[FacePrediction], detector: Detector, threshold: float,
    input_sha256: str | None, seconds: float, kind: str = "image",
) -> ResultRow:
    """The result row of one decoded input from its faces and their predictions (nothing rendered).

    No faces -> ``no_face``; else ``prob_fake`` is the max over faces and ``label`` follows ``threshold``.
    """
    base = dict(path=path, kind=kind, threshold=threshold, model_sha256=detector.model_sha256, input_sha256=input_sha256, model_trained=detector.trained, seconds=seconds)
    if not predictions:
        return ResultRow(status="no_face", error="no face was found in the image", **base)
    detections = [
        Detection(face_index=k, box=face.box, det_score=face.score, prob_fake=pred.prob_fake)
        for k, (face, pred) in enumerate(zip(faces, predictions))
    ]
    prob = max(pred.prob_fake for pred in predictions)
    return ResultRow(status="ok", prob_fake=prob, label="fake" if prob >= threshold else "real", faces=len(predictions), detections=detections, **base)


def _make_row(loaded: LoadedInput, preds: list[FacePrediction], detector: Detector, threshold: float, renderer: _Renderer, per_face: float) -> ResultRow:
    start = time.perf_counter()
    if loaded.error is not None:
        return ResultRow(
            path=loaded.item.path, kind=loaded.item.kind, status="error", error=loaded.error, threshold=threshold,
            model_sha256=detector.model_sha256, input_sha256=loaded.input_sha256, model_trained=detector.trained, seconds=loaded.seconds,
        )
    row = image_result(
        path=loaded.item.path, kind=loaded.item.kind, faces=loaded.faces, predictions=preds, detector=detector,
        threshold=threshold, input_sha256=loaded.input_sha256, seconds=loaded.seconds + per_face * len(preds),
    )
    if row.status == "ok":
        row.panel = renderer.render(loaded, preds, row.detections)
    row.seconds += time.perf_counter() - start
    return row


def _write_run_json(
    summary: RunSummary, detector: Detector, opts: AnalyzeOptions, threshold: float, command: str | None, started: datetime, inputs: list[str]
) -> None:
    from . import __version__

    atomic_write_json(summary.out_dir / "run.json", {
        "command": command if command is not None else " ".join(sys.argv),
        "inputs": inputs,
        "options": dataclasses.asdict(opts),
        "threshold": threshold,
        "package_version": __version__,
        "model": {
            "sha256": detector.model_sha256,
            "trained": detector.trained,
            "package_version": detector.config.package_version,
            "config": detector.config.model,
            "preprocess": dataclasses.asdict(detector.config.preprocess),
            "temperature": detector.config.temperature,
        },
        "device": str(detector.device),
        "torch_version": torch.__version__,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "counts": summary.counts,
        "rows": len(summary.rows),
        "skipped_files": summary.skipped,
        "exit_code": summary.exit_code,
        "untrained_warning": None if detector.trained else "UNTRAINED placeholder model: every score is meaningless",
    })
