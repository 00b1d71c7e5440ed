"""``analyze``: inputs -> decode and find faces (DataLoader workers) -> batched model and
Grad-CAM++ -> rendered maps -> ordered result rows, ``run.json`` and an HTML report.

Workers shard the inputs (input ``i`` goes to worker ``i % workers``) and stream *messages*: one
per image, one per chunk of sampled frames for a video (``video``). The main process
scores the faces of several messages per forward pass, and writes each input's row once it and
every earlier input are complete, so rows keep the sorted input order.

Under ``torchrun`` (or in an initialised process group) each rank analyses a disjoint shard of the
inputs and rank 0 merges the parts; every run keeps a journal of finished rows so that ``resume``
continues a killed run without losing or duplicating a row (``sharding`` explains both). The time
the model loop waits for the DataLoader is measured and recorded in ``run.json``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from ..checkpoint import load_temporal_head
from ..data.inputs import InputItem, discover
from ..data.transforms import Preprocess
from ..detector import DEFAULT_MODEL_DIR, Detector, FacePrediction
from ..files import atomic_write_json, display_path
from ..model.temporal import TemporalAttentionPooling
from .image import LoadedInput, Renderer, load_image, make_image_row
from .options import AnalyzeOptions, RunSummary
from .ranks import Ranks, join_ranks, rank_device
from .results import ResultRow
from .sharding import PartWriter, Plan, fingerprint, finish, mark_done, mark_failed, merge_failed, merge_parts, part_path, prepare, read_merged, shard, status_counts, wait_for_merge, wait_for_ranks
from .video import VideoAccumulator
from .video_chunks import VideoChunk, iter_video_chunks


class _InputLoader(IterableDataset):
    """Decodes inputs and finds their faces, as messages (module doc); every failure is kept as the item's error."""

    def __init__(self, items: Sequence[InputItem], options: AnalyzeOptions, preprocess: Preprocess) -> None:
        self.items = items
        self.options = options
        self.preprocess = preprocess

    def __iter__(self) -> Iterator[LoadedInput | VideoChunk]:
        worker = get_worker_info()
        for index in range(len(self.items)) if worker is None else range(worker.id, len(self.items), worker.num_workers):
            if self.items[index].kind == "video":
                yield from iter_video_chunks(index, self.items[index], self.options, self.preprocess)
            else:
                yield self.load_image(index)

    def load_image(self, index: int) -> LoadedInput:
        return load_image(index, self.items[index], self.options.max_pixels, self.preprocess, face_detect=self.options.face_detect)


def _identity(sample: LoadedInput | VideoChunk) -> LoadedInput | VideoChunk:
    return sample


def analyze(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    model: str | Path | Detector | None = None,
    command: str | None = None,
    resume: bool = False,
    **options: Any,
) -> RunSummary:
    """Analyze image and video files and folders; write rows, maps, ``run.json`` and ``report.html`` to ``out_dir``.

    Args:
        inputs: files and folders (walked recursively, sorted).
        out_dir: where results go; rendered file paths in the rows are relative to it.
        model: a checkpoint directory or a loaded :class:`Detector` (default: the shipped model).
        command: the command line to record in ``run.json``.
        resume: continue the interrupted run in ``out_dir``: inputs with a finished row are skipped;
            the model, the row-changing options and the inputs must be the same, else ValueError.
            Without an unfinished run in ``out_dir`` the run starts afresh.
        **options: fields of :class:`AnalyzeOptions`.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) or in an initialised process group, each rank analyses
    its shard and rank 0 merges (module ``sharding``). Returns a :class:`RunSummary`; ``exit_code``
    is 1 when any row of the run is an error (or ``no_face`` with ``fail_on_no_face``), else 0.
    """
    opts = AnalyzeOptions(**options)
    started = datetime.now(timezone.utc)
    ranks = join_ranks()
    try:
        return _run(inputs, Path(out_dir), model, command, resume, opts, started, ranks)
    finally:
        ranks.close()


def _run(inputs: Iterable[str | Path], out_dir: Path, model: str | Path | Detector | None, command: str | None, resume: bool,
         opts: AnalyzeOptions, started: datetime, ranks: Ranks) -> RunSummary:
    if isinstance(model, Detector):
        detector = model
    else:
        detector = Detector.load(model, device=rank_device(opts.device, ranks), amp=opts.amp, compile=opts.compile)
    head = _temporal_head(model, detector) if opts.temporal_head else None
    threshold = detector.threshold if opts.threshold is None else opts.threshold
    listed = [str(i) for i in inputs] if not isinstance(inputs, (str, Path)) else [str(inputs)]
    plan, failure = Plan(), None
    if ranks.rank == 0:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            _check_out_dir(listed, out_dir)
            items, skipped = discover(listed, exclude=[out_dir])
            plan = prepare(out_dir, items, skipped, _fingerprint(items, detector, opts, threshold), resume=resume)
        except (ValueError, OSError) as error:
            failure, plan = error, Plan(error=str(error))
    plan = ranks.broadcast(plan)
    if failure is not None:
        raise failure
    if plan.error is not None:
        raise ValueError(plan.error)
    untrained = not detector.trained
    if plan.complete:  # nothing left: the merged files are already there
        rows = read_merged(out_dir) if ranks.rank == 0 else []
        return RunSummary(out_dir, rows, status_counts(plan.done_counts), _skipped_paths(plan), _exit_code(plan.done_counts, opts), out_dir / "report.html",
                          untrained, ranks.rank, ranks.world, plan.resumed_rows, skipped_entries=plan.skipped)
    mine = shard(plan.remaining, ranks.rank, ranks.world)
    items = [plan.items[index] for index in mine]
    renderer = Renderer(out_dir, opts, threshold, untrained=untrained)
    loader = DataLoader(
        _InputLoader(items, opts, detector.config.preprocess),
        batch_size=None,
        num_workers=opts.workers,
        collate_fn=_identity,
        prefetch_factor=4 if opts.workers else None,
        persistent_workers=False,
    )
    show = False if ranks.rank != 0 else opts.progress
    desc = "analyze" if ranks.world == 1 else f"analyze (rank 0 of {ranks.world})"
    progress = tqdm(total=len(items), desc=desc, unit="file", disable=(not show) if show is not None else None)
    try:
        with PartWriter(part_path(out_dir, plan.attempt, ranks.rank)) as part:
            pipeline = _Pipeline(detector, opts, threshold, renderer, lambda position, row: part.write(mine[position], row), head, progress)
            timing = _feed(loader, pipeline)
        if len(pipeline.rows) != len(items):
            raise RuntimeError(f"internal error: {len(items)} inputs but {len(pipeline.rows)} rows were completed")
    except BaseException as error:
        mark_failed(out_dir, plan.attempt, ranks.rank, error)
        raise
    finally:
        progress.close()
    mark_done(out_dir, plan.attempt, ranks.rank, {"rows": len(items), "counts": dict(pipeline.counts), **timing})
    infos = wait_for_ranks(out_dir, plan.attempt, ranks.world)
    ranks.barrier()  # every rank has read every done-file: rank 0 may now merge and delete the journal
    total = Counter(plan.done_counts)
    for info in infos:
        total.update(info["counts"])
    counts = status_counts(total)
    steady = sum(i["loop_s"] - i["start_s"] - i["end_s"] for i in infos)
    timing = {
        "ranks": [{"rank": r, "rows": i["rows"], **{k: round(i[k], 4) for k in ("start_s", "data_wait_s", "end_s", "loop_s")}} for r, i in enumerate(infos)],
        "data_wait_fraction": sum(i["data_wait_s"] for i in infos) / steady if steady > 0 else 0.0,
    }
    common = dict(untrained=untrained, rank=ranks.rank, world_size=ranks.world, resumed_rows=plan.resumed_rows, data_wait_fraction=timing["data_wait_fraction"],
                  skipped_entries=plan.skipped)
    if ranks.rank != 0:
        wait_for_merge(out_dir)
        return RunSummary(out_dir, pipeline.rows, counts, _skipped_paths(plan), _exit_code(counts, opts), out_dir / "report.html", **common)
    del pipeline
    try:
        rows, merged = merge_parts(out_dir, len(plan.items))
        if merged != counts:
            raise RuntimeError(f"internal error: the ranks counted {counts} but the merged journal holds {merged}")
        from .report import write_analysis_report

        summary = RunSummary(out_dir, rows, counts, _skipped_paths(plan), _exit_code(counts, opts), out_dir / "report.html", **common)
        _write_run_json(summary, detector, opts, threshold, command, started, listed, plan, timing)
        write_analysis_report(summary, detector, threshold)
    except BaseException as error:
        merge_failed(out_dir, error)
        raise
    finish(out_dir)
    return summary


def _check_out_dir(inputs: list[str], out_dir: Path) -> None:
    """ValueError when ``out_dir`` is one of the input folders: its results would be inputs of the next run.
    (An output folder *inside* an input folder is fine: discovery leaves it out.)"""
    for path in inputs:
        if os.path.isdir(path) and os.path.samefile(path, out_dir):
            raise ValueError(f"--out {display_path(out_dir)} is the input folder {display_path(path)} itself, so its results would be "
                             f"analysed as inputs by the next run; choose another folder, for example {display_path(Path(path) / 'results')} "
                             "(an output folder inside an input folder is left out of the inputs)")


def _skipped_paths(plan: Plan) -> list[str]:
    return [display_path(entry.path) for entry in plan.skipped]


def _temporal_head(model: str | Path | Detector | None, detector: Detector) -> TemporalAttentionPooling:
    if isinstance(model, Detector):
        raise ValueError("temporal_head needs the checkpoint folder as model= (a loaded Detector does not carry the head)")
    folder = DEFAULT_MODEL_DIR if model is None else Path(model)
    head = load_temporal_head(folder, feature_dim=detector.config.model.get("feature_dim"))
    if head is None:
        raise ValueError(f"the checkpoint {folder} has no temporal head (config.json info.temporal_head); "
                         "train one with --set temporal.enabled=true on clip data, or drop --temporal-head")
    return head


def _fingerprint(items: list[InputItem], detector: Detector, opts: AnalyzeOptions, threshold: float) -> dict[str, Any]:
    from ..version import __version__

    head = detector.config.info.get("temporal_head", {}).get("sha256") if opts.temporal_head else None
    precision = "float32" if detector.amp_dtype is None else str(detector.amp_dtype).removeprefix("torch.")
    return fingerprint(items, dataclasses.asdict(opts), model_sha256=detector.model_sha256, temporal_head_sha256=head, threshold=threshold,
                       precision=precision, package_version=__version__)


def _exit_code(counts: dict[str, int], opts: AnalyzeOptions) -> int:
    return 1 if counts.get("error", 0) > 0 or (opts.fail_on_no_face and counts.get("no_face", 0) > 0) else 0


def _feed(loader: DataLoader, pipeline: "_Pipeline") -> dict[str, float]:
    """Run every message through the pipeline, timing the loop's waits for the loader: ``start_s``
    (until the first message: worker start-up), ``end_s`` (for the end of the data: worker exit),
    ``data_wait_s`` (between, when the model had nothing to do) and ``loop_s`` (all)."""
    start = time.perf_counter()
    waits = []
    messages = iter(loader)
    while True:
        before = time.perf_counter()
        message = next(messages, None)
        waits.append(time.perf_counter() - before)
        if message is None:
            break
        pipeline.put(message)
    pipeline.flush()
    edges = waits[0] + (waits[-1] if len(waits) > 1 else 0.0)
    return {"start_s": waits[0], "end_s": edges - waits[0], "data_wait_s": sum(waits) - edges, "loop_s": time.perf_counter() - start}


class _Pipeline:
    """The main process: faces of several messages per forward pass, rows written in input order."""

    def __init__(self, detector: Detector, opts: AnalyzeOptions, threshold: float, renderer: Renderer, emit: Callable[[int, ResultRow], None],
                 head: TemporalAttentionPooling | None, progress: tqdm) -> None:
        """``emit(position, row)`` receives each row in order, ``position`` counting from 0."""
        self.detector, self.opts, self.threshold, self.renderer, self.emit, self.head, self.progress = detector, opts, threshold, renderer, emit, head, progress
        self.counts: Counter[str] = Counter()
        self.pending: list[LoadedInput | VideoChunk] = []
        self.pending_faces = 0
        self.videos: dict[int, VideoAccumulator] = {}
        self.finished: dict[int, ResultRow] = {}
        self.rows: list[ResultRow] = []

    def put(self, message: LoadedInput | VideoChunk) -> None:
        self.pending.append(message)
        self.pending_faces += len(message.faces)
        if self.pending_faces >= self.opts.batch_size:
            self.flush()

    def flush(self) -> None:
        """Score the pending faces, hand them to their rows (or videos), write what is complete."""
        crops = [face.crop for message in self.pending for face in message.faces]
        start = time.perf_counter()
        predictions: list[FacePrediction] = []
        for begin in range(0, len(crops), self.opts.batch_size):
            predictions += self.detector.predict(crops[begin : begin + self.opts.batch_size], cam=self.opts.cam)
        per_face = (time.perf_counter() - start) / max(1, len(crops))
        cursor = 0
        for message in self.pending:
            preds = predictions[cursor : cursor + len(message.faces)]
            cursor += len(message.faces)
            if isinstance(message, VideoChunk):
                video = self.videos.get(message.index)
                if video is None:
                    video = self.videos[message.index] = VideoAccumulator(
                        message, options=self.opts, threshold=self.threshold, detector=self.detector, renderer=self.renderer, head=self.head)
                video.add(message, preds, per_face * len(preds))
                if message.last:
                    self._complete(message.index, self.videos.pop(message.index).finish(message))
            else:
                self._complete(message.index, make_image_row(message, preds, self.detector, self.threshold, self.renderer, per_face))
        self.pending, self.pending_faces = [], 0

    def _complete(self, index: int, row: ResultRow) -> None:
        self.finished[index] = row
        while len(self.rows) in self.finished:
            row = self.finished.pop(len(self.rows))
            self.emit(len(self.rows), row)
            self.counts[row.status] += 1
            self.rows.append(row)
            self.progress.update(1)


def _write_run_json(
    summary: RunSummary, detector: Detector, opts: AnalyzeOptions, threshold: float, command: str | None, started: datetime, inputs: list[str],
    plan: Plan, timing: dict[str, Any],
) -> None:
    from ..version import __version__

    atomic_write_json(summary.out_dir / "run.json", {
        "command": display_path(command if command is not None else " ".join(sys.argv)),
        "inputs": [display_path(path) for path in inputs],
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
        "skipped": [entry.to_json() for entry in summary.skipped_entries],
        "exit_code": summary.exit_code,
        "untrained_warning": None if detector.trained else "UNTRAINED placeholder model: every score is meaningless",
        "world_size": summary.world_size,
        "attempts": plan.attempt,
        "resumed_rows": plan.resumed_rows,
        "repaired": plan.repaired,
        "timings": timing,
        "fingerprint": plan.fingerprint,
        "complete": True,
    })
