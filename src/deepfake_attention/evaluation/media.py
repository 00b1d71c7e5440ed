"""``evaluate_media``: benchmark figures for a manifest of whole images and videos.

The manifest lists files as ``deepfake-attention manifest ffpp|celebdf|folder`` writes them (one
row per video or image). They go through :func:`~..analysis.analyze` itself, into
``OUT/analysis/`` (face detection, tracks, aggregation, the checkpoint's preprocessing; its
``results.jsonl`` and report are kept there, and ``resume`` continues a killed run), and the rows
are scored at two levels:

- **media level**: one score per file, the row's ``prob_fake`` (an image's max over its faces, a
  video's max over its voting tracks);
- **face level**: every scored face with its file's label (for a video, every face of every
  sampled frame that belongs to a voting track, ``tracks[*].used``).

Groups: ``overall`` (every fake against every real), ``by_type`` (the fakes of one manipulation
type against **all** reals, the usual FaceForensics++ per-method protocol) and ``by_source`` (the
reals of one source: false-positive rate). The type of a fake and the source of a real is its
``video_id`` prefix before ``/`` (``Deepfakes``, ``Celeb-synthesis``, ``original``,
``YouTube-real``); without one, the folder under the file's nearest ``fake/`` (``real/``) folder,
else the label itself (:func:`~.fake_types.media_group`).

Files with no face or that could not be read are never dropped: each group counts them per status,
and every figure is given twice, over the scored files (``scored``) and with each such file as one
item at P(fake) = 0.5 (``missing_at_half``, :data:`~.media_levels.CONVENTION`). The figures are
computed in ``media_levels``, the report in ``media_report``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..analysis import AnalyzeOptions, RunSummary, analyze
from ..analysis.results import STATUSES, ResultRow
from ..data.manifest import SPLITS, ManifestRow, manifest_rows
from ..detector import Detector
from ..files import atomic_write_bytes, atomic_write_json
from .fake_types import media_group
from .media_levels import CONVENTION, LEVELS, MISSING_SCORE, CISettings, ScoredFile, level_section
from .sections import jsonable

SCHEMA = "deepfake-attention/evaluate-media/1"
UNTRAINED_NOTE = "UNTRAINED placeholder model: every score is meaningless"


@dataclass(frozen=True)
class MediaOptions:
    """The knobs of :func:`evaluate_media` beyond ``analyze``'s, validated on construction."""

    threshold: float | None = None
    """P(fake) threshold for TPR / FPR and labels (default: the checkpoint's); passed to ``analyze``."""
    split: str | None = None
    """Evaluate only the rows of this split (train, val, test; "" = unassigned)."""
    bootstrap: int = 200
    """Bootstrap replicates (files resampled within each class) for the AUCs' 95% CIs (0: none)."""
    ci_min: int = 10
    """Fewest files of each class a group needs for a CI."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.split is not None and self.split not in (*SPLITS, ""):
            raise ValueError(f"split must be one of {', '.join(SPLITS)} or '' (unassigned), got {self.split!r}")
        for name in ("bootstrap", "ci_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


MEDIA_FIELDS = {f.name for f in dataclasses.fields(MediaOptions)}
ANALYZE_FIELDS = {f.name for f in dataclasses.fields(AnalyzeOptions)}


@dataclass
class MediaEvalResult:
    """What :func:`evaluate_media` produced: the metrics (as in ``metrics.json``), the files and the analysis run."""

    metrics: dict[str, Any]
    out_dir: Path
    metrics_path: Path
    report_path: Path
    exit_code: int
    """The analysis run's: 1 when any file is an error (or has no face, with ``fail_on_no_face``), else 0."""
    analysis: RunSummary
    untrained: bool = False


def face_scores(row: ResultRow) -> list[float]:
    """The face-level scores of a row: every face of an image; for a video every face of every
    sampled frame in a voting track (``tracks[*].used``, all tracks when not recorded)."""
    if row.status != "ok":
        return []
    if row.kind != "video":
        return [d.prob_fake for d in row.detections]
    voting = {t["track_id"] for t in row.extra.get("tracks") or [] if t.get("used", True)}
    return [face["prob_fake"] for frame in row.extra.get("frames") or [] for face in frame["faces"] if face.get("track_id") in voting]


def _media_rows(source: str | Path | Sequence[ManifestRow], split: str | None) -> list[ManifestRow]:
    rows = manifest_rows(source, "manifest", split)
    seen: dict[str, ManifestRow] = {}
    for row in rows:
        if row.path in seen:
            raise ValueError(f"{row.path} is listed twice (frames {seen[row.path].frame} and {row.frame}); the media level scores each "
                             "whole file once: give one row per image or video (a manifest of frame crops is evaluated without --media)")
        if Path(row.path).is_dir():
            raise ValueError(f"{row.path} is a folder; a media manifest lists image and video files")
        seen[row.path] = row
    return rows


def _split_options(options: dict[str, Any]) -> tuple[MediaOptions, dict[str, Any]]:
    unknown = sorted(set(options) - MEDIA_FIELDS - ANALYZE_FIELDS)
    if unknown:
        raise ValueError(f"option(s) {', '.join(unknown)} do not apply to media evaluation (they are for face-crop manifests); "
                         f"use {', '.join(sorted(MEDIA_FIELDS | ANALYZE_FIELDS))}")
    media = MediaOptions(**{k: v for k, v in options.items() if k in MEDIA_FIELDS})
    passed = {k: v for k, v in options.items() if k in ANALYZE_FIELDS}
    passed.setdefault("save_maps", "none")
    passed.setdefault("cam", passed["save_maps"] != "none")
    AnalyzeOptions(**passed)  # fail early, before any file is read
    return media, passed


def evaluate_media(manifest: str | Path | Sequence[ManifestRow], out_dir: str | Path, *, model: str | Path | Detector | None = None,
                   command: str | None = None, resume: bool = False, **options: Any) -> MediaEvalResult:
    """Evaluate a detector on whole images and videos; write ``metrics.json``, ``files.csv`` and ``report.html``.

    Args:
        manifest: a manifest CSV path or its rows, one per image or video (``video_id`` names the
            manipulation type or real source before ``/``, as the FF++ and Celeb-DF builders write).
        out_dir: the output folder; the analysis run goes to ``out_dir/analysis``.
        model: a checkpoint directory or a loaded :class:`Detector` (default: the shipped model).
        command: the command line to record.
        resume: continue the interrupted (or reuse the finished) analysis in ``out_dir/analysis``.
        **options: fields of :class:`MediaOptions` and of :class:`~..analysis.AnalyzeOptions`
            (default ``save_maps="none"`` and, then, ``cam=False``; ``save_maps="panel"`` keeps panels).

    Raises ``ValueError`` for an empty selection, a path listed twice, or options that do not apply.
    """
    opts, analyze_options = _split_options(options)
    rows = _media_rows(manifest, opts.split)
    started = datetime.now(timezone.utc)
    out_dir = Path(out_dir)
    summary = analyze([row.path for row in rows], out_dir / "analysis", model=model, command=command, resume=resume, **analyze_options)
    if summary.rank != 0:  # under torchrun rank 0 writes the figures
        return MediaEvalResult({}, out_dir, out_dir / "metrics.json", out_dir / "report.html", summary.exit_code, summary, summary.untrained)
    if [r.path for r in summary.rows] != [str(Path(r.path)) for r in rows]:
        raise RuntimeError("internal error: the analysis rows do not follow the manifest's files")
    run = json.loads((out_dir / "analysis" / "run.json").read_text(encoding="utf-8"))
    threshold = float(run["threshold"])
    files = [ScoredFile(m.path, int(m.is_fake), media_group(m), m.video_id, r.kind, r.status, r.prob_fake, tuple(face_scores(r)), r.error)
             for m, r in zip(rows, summary.rows)]
    from ..version import __version__

    notes = [] if run["model"]["trained"] else [UNTRAINED_NOTE]
    ci = CISettings(replicates=opts.bootstrap, min_files=opts.ci_min, seed=opts.seed)
    metrics: dict[str, Any] = {
        "schema": SCHEMA,
        "command": command if command is not None else " ".join(sys.argv),
        "options": {**dataclasses.asdict(opts), "analyze": analyze_options, "resume": resume,
                    "manifest": str(manifest) if isinstance(manifest, (str, Path)) else f"{len(manifest)} rows"},
        "package_version": __version__,
        "model": {"sha256": run["model"]["sha256"], "trained": run["model"]["trained"], "temperature": run["model"]["temperature"],
                  "package_version": run["model"]["package_version"], "size": run["model"]["preprocess"]["size"],
                  "face_detector": run["model"]["preprocess"].get("detector"), "trunk": run["model"]["config"].get("trunk")},
        "device": run["device"], "started": started.isoformat(), "threshold": threshold,
        "scores": "media level: the analysis row's P(fake) (image: max over faces; video: max over voting tracks of the track's "
                  f"{analyze_options.get('aggregate', 'mean')}); face level: each face's P(fake); fake iff P(fake) >= threshold",
        "analysis": {"folder": "analysis", "results": "analysis/results.jsonl", "report": "analysis/report.html", "resumed_rows": summary.resumed_rows},
        "counts": _counts(files),
        "notes": notes,
        "media": {"convention": CONVENTION, "missing_score": MISSING_SCORE,
                  **{level: level_section(files, unit, threshold, ci) for level, unit in LEVELS.items()}},
        "errors": [_listed(f) for f in files if f.status == "error"],
        "no_face": [_listed(f) for f in files if f.status == "no_face"],
    }
    if metrics["counts"]["no_face"] + metrics["counts"]["error"]:
        notes.append(f"{metrics['counts']['no_face']} files without a face and {metrics['counts']['error']} unreadable files are counted "
                     "in every group and scored 0.5 in the 'missing_at_half' figures")
    metrics["finished"] = datetime.now(timezone.utc).isoformat()
    metrics = jsonable(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_files_csv(files, out_dir / "files.csv")
    from .media_report import write_media_report

    report = write_media_report(metrics, out_dir / "report.html")
    return MediaEvalResult(metrics, out_dir, out_dir / "metrics.json", report, summary.exit_code, summary, untrained=not run["model"]["trained"])


def _counts(files: list[ScoredFile]) -> dict[str, int]:
    counts = {"files": len(files), "real": sum(f.label == 0 for f in files), "fake": sum(f.label == 1 for f in files),
              "images": sum(f.kind != "video" for f in files), "videos": sum(f.kind == "video" for f in files)}
    counts.update({status: sum(f.status == status for f in files) for status in STATUSES})
    counts["faces"] = sum(len(f.faces) for f in files)
    return counts


def _listed(f: ScoredFile) -> dict[str, Any]:
    return {"path": f.path, "video_id": f.video_id, "label": "fake" if f.label else "real", "group": f.group, "kind": f.kind, "message": f.message}


FILE_COLUMNS = ("path", "label", "group", "video_id", "kind", "status", "prob_fake", "faces", "message")


def _write_files_csv(files: list[ScoredFile], path: Path) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FILE_COLUMNS)
    for f in files:
        writer.writerow([f.path, "fake" if f.label else "real", f.group, f.video_id, f.kind, f.status,
                         "" if f.prob_fake is None else f"{f.prob_fake:.6f}", len(f.faces), f.message or ""])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


__all__ = ["CONVENTION", "MediaEvalResult", "MediaOptions", "ScoredFile", "evaluate_media", "face_scores", "media_group"]
