"""Asynchronous jobs (``POST /v1/jobs``, ``GET /v1/jobs/{id}``), meant for videos, open to images.

Each job lives in its own folder under the store's root, named by a random unguessable id (the
client's file name is never used on disk): ``upload<suffix>`` while it waits and runs (deleted
when the analysis ends, whatever the outcome) and ``result.json`` afterwards, deleted with the
folder ``retention_s`` seconds after the job ended. Videos run one at a time through
:func:`analysis.analyze` in a worker thread, their model calls joining the shared batch queue;
where ``analyze`` does not take videos yet, the job fails with its message.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..analysis.pipeline import analyze
from ..detector import Detector
from ..files import atomic_write_json
from .batching import BatchQueue
from .pipeline import UNTRAINED_WARNING, file_data_uri
from .uploads import RequestError

JOB_ID = re.compile(r"[A-Za-z0-9_-]{22}")
log = logging.getLogger("deepfake_attention.service")


class JobsFull(Exception):
    """The store holds ``max_jobs`` jobs already."""


@dataclass
class Job:
    """A job's bookkeeping (the result itself is on disk)."""

    job_id: str
    kind: str
    filename: str
    folder: Path
    upload: Path
    created: float
    status: str = "queued"
    finished: float | None = None
    error: str | None = None


class JobStore:
    """Jobs in folders under ``root`` (None: a private temporary folder, removed by :meth:`close`).

    Args:
        retention_s: seconds a finished job's result is kept.
        max_jobs: jobs held at once; :meth:`create` raises :class:`JobsFull` beyond it.
        clock: time source (Unix seconds), replaceable in tests.
    """

    def __init__(self, root: str | Path | None, *, retention_s: float, max_jobs: int, clock: Callable[[], float] = time.time) -> None:
        self._owned = root is None
        self.root = Path(tempfile.mkdtemp(prefix="deepfake-attention-jobs-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.retention_s, self.max_jobs, self.clock = retention_s, max_jobs, clock
        self._jobs: dict[str, Job] = {}
        self._video_slot = asyncio.Semaphore(1)

    def create(self, kind: str, filename: str, suffix: str) -> Job:
        """A new queued job with an empty folder; ``suffix`` (server-chosen) names the upload file."""
        self.sweep()
        if len(self._jobs) >= self.max_jobs:
            raise JobsFull(f"{self.max_jobs} jobs are held already; retry after some expire (retention {self.retention_s:.0f} s)")
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        job = Job(job_id=job_id, kind=kind, filename=filename, folder=folder, upload=folder / f"upload{suffix}", created=self.clock())
        self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        """The job of that id, or None (also for ids that cannot be ours)."""
        return self._jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None

    def __len__(self) -> int:
        return len(self._jobs)

    async def execute(self, job: Job, work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Run ``work`` (videos: one at a time), store its result row, delete the upload."""
        slot = self._video_slot if job.kind == "video" else None
        acquired = False
        try:
            if slot is not None:
                acquired = await slot.acquire()
            job.status = "running"
            result = await work()
            atomic_write_json(job.folder / "result.json", result)
            job.status, job.error = ("failed", result.get("error")) if result.get("status") == "error" else ("done", None)
        except RequestError as error:
            job.status, job.error = "failed", error.message
        except Exception as error:  # recorded in the job and logged with its traceback, not swallowed
            log.exception("job failed", extra={"event": "job_error", "job_id": job.job_id})
            job.status, job.error = "failed", f"internal error while analysing ({type(error).__name__}); see the server log"
        finally:
            if slot is not None and acquired:
                slot.release()
            job.upload.unlink(missing_ok=True)
            job.finished = self.clock()
            log.info("job finished", extra={"event": "job_finished", "job_id": job.job_id, "status": job.status, "kind": job.kind})

    def status(self, job: Job, model_trained: bool) -> dict[str, Any]:
        """The ``JobStatus`` body of a job (reads the stored result when done)."""
        result = None
        if job.status == "done":
            result = json.loads((job.folder / "result.json").read_text(encoding="utf-8"))
        return {
            "job_id": job.job_id, "status": job.status, "kind": job.kind, "filename": job.filename, "created": job.created,
            "finished": job.finished, "expires_at": None if job.finished is None else job.finished + self.retention_s,
            "error": job.error, "result": result, "model_trained": model_trained,
        }

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete jobs that ended ``retention_s`` or more ago (folder and record); their ids."""
        now = self.clock() if now is None else now
        expired = [j.job_id for j in self._jobs.values() if j.finished is not None and now - j.finished >= self.retention_s]
        for job_id in expired:
            shutil.rmtree(self._jobs.pop(job_id).folder, ignore_errors=True)
        if expired:
            log.info("jobs expired", extra={"event": "jobs_expired", "count": len(expired)})
        return expired

    async def sweep_forever(self) -> None:
        """Sweep periodically (every retention_s / 4, between 0.05 and 30 seconds) until cancelled."""
        interval = min(30.0, max(0.05, self.retention_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    def close(self) -> None:
        """Delete every job folder (and the root when the store made it)."""
        for job in self._jobs.values():
            shutil.rmtree(job.folder, ignore_errors=True)
        self._jobs.clear()
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


def analyze_video(path: Path, filename: str, detector: Detector, batcher: BatchQueue) -> dict[str, Any]:
    """Run :func:`analysis.analyze` on one video file (blocking: call it from a worker thread).

    The detector's ``predict`` is routed through ``batcher`` so frames share forward passes with
    image requests and the model stays on one thread. Rendered files become data URIs; the
    output folder is deleted before returning. Returns the row's JSON with ``path = filename``.
    """
    proxy = copy.copy(detector)
    proxy.predict = batcher.predict_blocking  # type: ignore[method-assign]
    out = Path(tempfile.mkdtemp(prefix="analysis-", dir=path.parent))
    try:
        summary = analyze([path], out, model=proxy, save_maps="all", progress=False, command="deepfake-attention serve (job)")
        row = summary.rows[0].to_json()
        row["path"] = filename
        _inline_pngs(row, out)
        for det in row.get("detections", []):  # per face track; the same label rule as images
            det.setdefault("label", "fake" if det["prob_fake"] >= row["threshold"] else "real")
        row["untrained_warning"] = None if detector.trained else UNTRAINED_WARNING
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _inline_pngs(row: dict[str, Any], out: Path) -> None:
    """Replace rendered file paths (relative to ``out``) in a row by data URIs, recursively."""
    root = out.resolve()

    def convert(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: convert(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v, key) for v in value]
        if isinstance(value, str) and (key == "panel" or key.endswith("_png")) and value.endswith(".png"):
            target = (out / value).resolve()
            if target.is_relative_to(root) and target.is_file():
                return file_data_uri(target.read_bytes())
        return value

    row.update(convert(row))
