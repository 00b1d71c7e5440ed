"""Sharded and resumable ``analyze`` runs: which rank takes which input, the journal of finished
rows, resuming from it, and the merge of the ranks' parts into one set of files in input order
(the processes themselves, rank and world size: ``ranks``).

Layout of an unfinished run under ``--out``::

    parts/manifest.json                      the run's fingerprint: model, options, inputs
    parts/attempt-001/rank-00000.jsonl       one line per finished input: {"index": i, "row": {...}}
    parts/attempt-001/rank-00000.done.json   written once the rank's shard is complete

**Shards.** ``discover`` numbers the inputs 0..n-1 in its sorted, deterministic order. The inputs
not yet done are dealt round-robin: rank ``r`` of ``W`` takes the r-th, (r+W)-th, ... of them, which
spreads runs of similar inputs (a folder of long videos) over all ranks. Shards are drawn from the
*remaining* indices of the whole run, so a resumed run may use any world size.

**Journal.** A rank appends one line per input, in its shard's order, once the input's row is
complete (its rendered files first, then the line, flushed): the line is the done-marker. A kill
can only leave a partial *last* line; resuming detects it (no newline, bad JSON, or an entry that
does not match the inputs), cuts it off and analyses that input again. Every run (attempt) writes
fresh files, so each part file is sorted by index and the merge streams them (``heapq.merge``).
The journal survives killed processes; after a power loss the file system may drop the last lines,
which are then analysed again. Two runs writing into one folder at once are not supported.

**End of a run.** Each rank writes its done-file and waits (polling the file system, not a
collective, so a rank that finishes hours early does not hit a process-group timeout) for all the
others; rank 0 then merges the parts into ``results.jsonl`` (the index dropped), ``results.csv`` and
``faces.csv`` (rebuilt from the JSON rows), writes ``run.json`` (with the fingerprint) and the report,
and deletes ``parts/``, which the other ranks wait for. Every rank returns the exit code of the
global counts. The ``--out`` folder must be on a file system all nodes share.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..data.inputs import InputItem, SkippedEntry
from ..files import atomic_write_json, path_fields, raw_path_bytes
from .results import ROW_FIELDS, STATUSES, Detection, ResultRow, ResultWriter, read_results

PARTS = "parts"
MERGE_FAILED = "merge.failed.json"
RESULT_FILES = ("results.jsonl", "results.csv", "faces.csv", "run.json", "report.html")
ROW_OPTIONS = ("cam", "save_maps", "face_detect", "max_pixels", "frames", "fps", "aggregate", "topk", "annotate",
               "temporal_head", "consistency_threshold")
"""Options that change rows or rendered files: a resumed run must use the same values. The others
(batch size, workers, device, compile, progress, fail-on-no-face) may change between attempts."""


class JournalError(ValueError):
    """The journal of an unfinished run cannot be used as it is (the message says what to do)."""


def shard(remaining: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s share of the remaining input indices: every ``world``-th, from the ``rank``-th."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    return list(remaining[rank::world])


# ---------------------------------------------------------------- fingerprint and plan


def fingerprint(items: Sequence[InputItem], options: Mapping[str, Any], **identity: Any) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: ``identity`` (model hash, threshold,
    precision ...), the :data:`ROW_OPTIONS` of ``options``, and the inputs (count and SHA-256 of their list)."""
    digest = hashlib.sha256(b"".join(raw_path_bytes(item.path) + f"\t{item.kind}\n".encode() for item in items)).hexdigest()
    return {**identity, "options": {name: options[name] for name in ROW_OPTIONS}, "inputs": {"count": len(items), "sha256": digest}}


def check_fingerprint(recorded: Mapping[str, Any], current: Mapping[str, Any], out_dir: Path) -> None:
    """Raise :class:`ValueError` naming every difference between the interrupted run and this one."""
    problems = []
    for key in sorted(set(recorded) | set(current)):
        before, now = recorded.get(key), current.get(key)
        if before == now:
            continue
        if key == "model_sha256":
            problems.append(f"the interrupted run used the model whose weights have SHA-256 {str(before)[:12]}..., "
                            f"this run loads {str(now)[:12]}... (pass the same --model)")
        elif key == "inputs":
            problems.append(f"the inputs changed: {before['count']} files then, {now['count']} now (or other names); pass the same inputs")
        elif key == "options":
            problems += [f"option {name} was {before.get(name)!r}, now {now.get(name)!r}"
                         for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name)]
        else:
            problems.append(f"{key} was {before!r}, now {now!r}")
    if problems:
        raise ValueError(f"cannot resume {out_dir}: " + "; ".join(problems)
                         + ". Rerun with the original settings, or without --resume to start afresh.")


@dataclass
class Plan:
    """Rank 0's decision for this attempt, broadcast to every rank."""

    items: list[InputItem] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    attempt: int = 1
    done_counts: dict[str, int] = field(default_factory=dict)
    """Statuses of the rows finished by earlier attempts."""
    complete: bool = False
    """The folder already holds the finished run's merged results (nothing to do)."""
    repaired: list[str] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def resumed_rows(self) -> int:
        return sum(self.done_counts.values())


def prepare(out_dir: Path, items: list[InputItem], skipped: list[SkippedEntry], current: dict[str, Any], *, resume: bool) -> Plan:
    """Rank 0, before any rank starts: check and repair the journal (``resume``) or clear the folder."""
    parts, run_json = out_dir / PARTS, out_dir / "run.json"
    plan = Plan(items=items, skipped=skipped, fingerprint=current)
    if resume and (parts / "manifest.json").is_file():
        check_fingerprint(json.loads((parts / "manifest.json").read_text())["fingerprint"], current, out_dir)
        (parts / MERGE_FAILED).unlink(missing_ok=True)
        done: set[int] = set()
        counts: Counter[str] = Counter()
        for path in part_files(out_dir):
            entries, valid, problem = scan_part(path, items)
            if problem is not None:
                os.truncate(path, valid)
                plan.repaired.append(f"{path.relative_to(out_dir)}: {problem} was cut off (a run killed while writing it)")
            for index, status in entries:
                if index in done:
                    raise JournalError(f"input {index} ({items[index].path}) is twice in the journal of {out_dir} (again in {path.name}): "
                                       "were two runs writing into this folder at once? Rerun without --resume")
                done.add(index)
                counts[status] += 1
        plan.remaining = [i for i in range(len(items)) if i not in done]
        plan.done_counts = dict(counts)
        plan.attempt = 1 + max((int(p.name.split("-")[1]) for p in parts.glob("attempt-*")), default=0)
        return plan
    if resume and run_json.is_file() and (out_dir / "results.jsonl").is_file():
        recorded = json.loads(run_json.read_text()).get("fingerprint")
        if recorded is None:
            raise ValueError(f"cannot resume {out_dir}: its run.json records no fingerprint (written by an older version); rerun without --resume")
        check_fingerprint(recorded, current, out_dir)
        plan.complete = True
        plan.done_counts = dict(Counter(row["status"] for row in read_results(out_dir)))
        return plan
    if (parts / "manifest.json").is_file():
        warnings.warn(f"{out_dir} held an unfinished run; starting afresh (pass --resume to continue such a run)", stacklevel=3)
    for name in RESULT_FILES:  # a fresh run replaces an earlier run's results (rendered files are overwritten by name)
        (out_dir / name).unlink(missing_ok=True)
    if parts.exists():
        shutil.rmtree(parts)  # errors propagate: a half-deleted journal must not meet a new manifest
    atomic_write_json(parts / "manifest.json", {"fingerprint": current})
    plan.remaining = list(range(len(items)))
    return plan


# ---------------------------------------------------------------- journal


def part_path(out_dir: Path, attempt: int, rank: int, suffix: str = ".jsonl") -> Path:
    return out_dir / PARTS / f"attempt-{attempt:03d}" / f"rank-{rank:05d}{suffix}"


def part_files(out_dir: Path) -> list[Path]:
    return sorted((out_dir / PARTS).glob("attempt-*/rank-*.jsonl"))


class PartWriter:
    """Appends a rank's finished rows, one flushed JSON line each: ``{"index": i, "row": row}``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "ab")

    def write(self, index: int, row: ResultRow) -> None:
        self._handle.write((json.dumps({"index": index, "row": row.to_json()}) + "\n").encode())
        self._handle.flush()

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(line: bytes, items: Sequence[InputItem]) -> tuple[int, dict[str, Any]] | None:
    """A journal line's (index, row), or None when it is partial or does not match the inputs."""
    if not line.endswith(b"\n"):
        return None
    try:
        data = json.loads(line)
    except ValueError:  # bad JSON or bad UTF-8: the line was cut while being written
        return None
    if not isinstance(data, dict) or type(data.get("index")) is not int or not isinstance(data.get("row"), dict):
        return None
    index, row = data["index"], data["row"]
    if not 0 <= index < len(items) or row.get("status") not in STATUSES:
        return None
    name = path_fields(items[index].path)
    if row.get("path") != name["path"] or row.get("path_bytes") != name["path_bytes"]:
        return None
    return index, row


def scan_part(path: Path, items: Sequence[InputItem]) -> tuple[list[tuple[int, str]], int, str | None]:
    """A part file's (index, status) entries, the byte length of its valid lines, and what is wrong
    with its last line (None when it is whole). A bad line before the last is a :class:`JournalError`."""
    entries: list[tuple[int, str]] = []
    valid = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            entry = _entry(line, items)
            if entry is None:
                if handle.read().strip():
                    raise JournalError(f"line {number} of {path} is damaged but is not the last line, so it was not cut by a kill; "
                                       "rerun without --resume")
                return entries, valid, f"a partial last line ({len(line)} bytes, line {number})"
            if entries and entry[0] <= entries[-1][0]:
                raise JournalError(f"{path} is not in input order at line {number}; rerun without --resume")
            entries.append((entry[0], entry[1]["status"]))
            valid += len(line)
    return entries, valid, None


def row_from_json(data: Mapping[str, Any]) -> ResultRow:
    """The :class:`ResultRow` whose ``to_json()`` is ``data`` (keys beyond the schema go to ``extra``)."""
    detections = [Detection(**{**det, "box": tuple(det["box"])}) for det in data.get("detections", [])]
    extra = {key: value for key, value in data.items() if key not in ROW_FIELDS and key != "detections"}
    fields = {name: data[name] for name in ROW_FIELDS if name != "path_bytes"}
    return ResultRow(**fields, path_bytes=data.get("path_bytes"), detections=detections, extra=extra)


def _read_part(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        for line in handle:
            data = json.loads(line)
            yield data["index"], data["row"]


def merge_parts(out_dir: Path, count: int) -> tuple[list[ResultRow], dict[str, int]]:
    """Merge every part file into ``results.jsonl``, ``results.csv`` and ``faces.csv`` in input
    order; the rows and their status counts. Every index in ``[0, count)`` must appear exactly once."""
    rows: list[ResultRow] = []
    with ResultWriter(out_dir) as writer:
        for expected, (index, data) in enumerate(heapq.merge(*map(_read_part, part_files(out_dir)), key=lambda e: e[0])):
            if index != expected:
                problem = "twice" if index < expected else "missing"
                raise JournalError(f"input {min(index, expected)} is {problem} in the journal of {out_dir}; rerun with --resume")
            row = row_from_json(data)
            writer.write(row)
            rows.append(row)
    if len(rows) != count:
        raise JournalError(f"the journal of {out_dir} holds {len(rows)} of {count} rows; rerun with --resume")
    return rows, status_counts(writer.counts)


def status_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Every status of :data:`~.results.STATUSES` with its count (0 when absent), in that order."""
    return {status: counts.get(status, 0) for status in STATUSES}


def read_merged(out_dir: Path) -> list[ResultRow]:
    """The rows of a finished run's ``results.jsonl``."""
    return [row_from_json(data) for data in read_results(out_dir)]


def finish(out_dir: Path) -> None:
    """Delete the journal of a run whose merged files and ``run.json`` are written (rank 0's last
    step): the manifest first (its removal tells the other ranks), then the rest."""
    (out_dir / PARTS / "manifest.json").unlink(missing_ok=True)
    shutil.rmtree(out_dir / PARTS, ignore_errors=True)


def merge_failed(out_dir: Path, error: BaseException) -> None:
    atomic_write_json(out_dir / PARTS / MERGE_FAILED, {"error": f"{type(error).__name__}: {error}"})


def wait_for_merge(out_dir: Path, *, poll_s: float = 0.05, max_poll_s: float = 1.0) -> None:
    """Other ranks: wait until rank 0 has finished (the manifest is gone). A rank that exits first
    with a failing exit code would make torchrun stop rank 0 in the middle of its merge."""
    failed = out_dir / PARTS / MERGE_FAILED
    while (out_dir / PARTS / "manifest.json").exists():
        if failed.is_file():
            raise RuntimeError(f"rank 0 could not merge the parts ({json.loads(failed.read_text())['error']}); rerun with --resume")
        time.sleep(poll_s)
        poll_s = min(max_poll_s, poll_s * 1.5)


# ---------------------------------------------------------------- end of a rank


def mark_done(out_dir: Path, attempt: int, rank: int, info: dict[str, Any]) -> None:
    atomic_write_json(part_path(out_dir, attempt, rank, ".done.json"), info)


def mark_failed(out_dir: Path, attempt: int, rank: int, error: BaseException) -> None:
    atomic_write_json(part_path(out_dir, attempt, rank, ".failed.json"), {"error": f"{type(error).__name__}: {error}"})


def wait_for_ranks(out_dir: Path, attempt: int, world: int, *, poll_s: float = 0.02, max_poll_s: float = 1.0) -> list[dict[str, Any]]:
    """Every rank's done-file of this attempt, in rank order, once all exist. Raises
    :class:`RuntimeError` when a rank wrote a failed-file instead (its finished rows are kept)."""
    infos: dict[int, dict[str, Any]] = {}
    while len(infos) < world:
        for rank in range(world):
            if rank in infos:
                continue
            failed = part_path(out_dir, attempt, rank, ".failed.json")
            if failed.is_file():
                reason = json.loads(failed.read_text())["error"]
                raise RuntimeError(f"rank {rank} failed ({reason}); the rows finished so far are kept: rerun with --resume")
            done = part_path(out_dir, attempt, rank, ".done.json")
            if done.is_file():
                infos[rank] = json.loads(done.read_text())
        if len(infos) < world:
            time.sleep(poll_s)
            poll_s = min(max_poll_s, poll_s * 1.5)
    return [infos[rank] for rank in range(world)]
