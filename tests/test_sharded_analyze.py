"""Sharded and resumable ``analyze``: two CPU processes (gloo, 127.0.0.1) write what one process
writes, row for row; a run killed midway resumes (same or another world size) without losing or
duplicating a row; a resume with another model, options or inputs is refused; a partial last
journal line is cut off.

Floats are compared to 1e-6: the ranks batch other faces together than one process does, and a
convolution over another batch may round differently in the last bits.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepfake_attention import Detector, analyze
from deepfake_attention.analysis.results import read_results
from deepfake_attention.analysis.sharding import JournalError, part_files, scan_part, shard
from deepfake_attention.cli import main

from .conftest import make_checkpoint, random_rgb, write_image
from .videos import make_video

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"batch_size": 3, "frames": 4, "progress": False}
CLI_OPTIONS = ["--batch-size", "3", "--frames", "4", "--quiet"]
TOLERANCE = 1e-6
TIMING_KEYS = {"seconds", "timings"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    """One thread per process (two cores, shared): set for this module, restored after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny checkpoint, a mixed folder (images, a bad file, a video) and its single-process output."""
    root = tmp_path_factory.mktemp("sharded")
    checkpoint = make_checkpoint(root / "ckpt")
    folder = root / "in"
    for i in range(9):
        write_image(folder / f"{'a' if i < 5 else 'c'}{i}.png", random_rgb(40 + i, 36, seed=i))
    (folder / "b_bad.jpg").write_text("not an image")
    make_video(folder / "b_clip.mp4", count=12)
    single = analyze([folder], root / "single", model=checkpoint, device="cpu", **OPTIONS)
    assert single.counts == {"ok": 10, "no_face": 0, "error": 1} and single.exit_code == 1
    return {"root": root, "checkpoint": checkpoint, "folder": folder, "single": root / "single"}


def comparable(value: Any) -> Any:
    """A row without its timings."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def assert_close(a: Any, b: Any, where: str = "row") -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=TOLERANCE), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


def rendered(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in rendered(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in rendered(v, key)]
    return [value] if isinstance(value, str) and (key == "panel" or key.endswith("_png")) else []


def assert_same_output(out: Path, reference: Path) -> None:
    """Every file of ``out`` holds what ``reference`` holds, row for row; rendered files exist; no journal is left."""
    rows, expected = read_results(out), read_results(reference)
    assert [r["path"] for r in rows] == [r["path"] for r in expected]
    for row, want in zip(rows, expected):
        assert_close(comparable(row), comparable(want), row["path"])
        for path in rendered(row):
            assert (out / path).is_file(), path
    assert sum(1 for row in rows if row["panel"]) == 10 and any(row.get("timeline_png") for row in rows)
    for name in ("results.csv", "faces.csv"):
        with open(out / name, newline="") as a, open(reference / name, newline="") as b:
            table, want_table = list(csv.DictReader(a)), list(csv.DictReader(b))
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in table] == [{k: v for k, v in r.items() if k != "seconds"} for r in want_table]
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {"ok": 10, "no_face": 0, "error": 1} and run["rows"] == 11 and run["complete"] is True
    assert (out / "report.html").is_file() and not (out / "parts").exists()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a killed process waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def journal_lines(out: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in part_files(out))


def _spawned(rank: int, world: int, port: int, case: dict[str, Any], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        summary = analyze([case["folder"]], out, model=case["checkpoint"], device="cpu", **OPTIONS)
        Path(f"{out}-rank{rank}.json").write_text(json.dumps({"exit_code": summary.exit_code, "rows": len(summary.rows), "counts": summary.counts,
                                                             "wait": summary.data_wait_fraction}))
    finally:
        dist.destroy_process_group()


def test_two_processes_write_what_one_writes(case: dict[str, Any]) -> None:
    out = case["root"] / "spawned"
    mp.spawn(_spawned, args=(2, free_port(), case, str(out)), nprocs=2, join=True)
    assert_same_output(out, case["single"])
    ranks = [json.loads(Path(f"{out}-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["exit_code"] for r in ranks] == [1, 1], "every rank returns the exit code of the whole run"
    assert ranks[0]["rows"] == 11 and ranks[1]["rows"] == 5 and ranks[0]["counts"] == ranks[1]["counts"]
    assert 0.0 <= ranks[0]["wait"] <= 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and [r["rows"] for r in run["timings"]["ranks"]] == [6, 5]


def torchrun(case: dict[str, Any], out: Path, *extra: str, slow: bool = False, pids: Path | None = None) -> subprocess.Popen:
    """``torchrun --nproc_per_node 2`` of the CLI (``slow``: each forward pass sleeps, see ``__main__`` below;
    ``pids``: each rank writes its process id there, as torchrun starts ranks in sessions of their own)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "tests.test_sharded_analyze", "slow" if slow else "fast",
               str(case["folder"]), "--out", str(out), "--model", str(case["checkpoint"]), "--device", "cpu", *CLI_OPTIONS, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"SHARDED_TEST_PIDS": str(pids)} if pids else {})}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_killed_sharded_run_resumes_without_loss_or_duplicates(case: dict[str, Any]) -> None:
    out, pids = case["root"] / "killed", case["root"] / "pids"
    pids.mkdir()
    run = torchrun(case, out, "--batch-size", "1", slow=True, pids=pids)
    deadline = time.monotonic() + 60
    while journal_lines(out) < 4:
        assert run.poll() is None and time.monotonic() < deadline, "the slowed run ended before it could be killed"
        time.sleep(0.02)
    ranks = [int(path.read_text()) for path in sorted(pids.glob("*.pid"))]
    assert len(ranks) == 2
    for pid in ranks:  # both ranks (and any DataLoader workers in their sessions), mid-run, then the launcher
        os.killpg(pid, signal.SIGKILL)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    while any(alive(pid) for pid in ranks):
        time.sleep(0.01)
    done = journal_lines(out)
    assert 4 <= done < 11 and not (out / "results.jsonl").exists()
    part = part_files(out)[0]
    with open(part, "ab") as handle:  # as if the kill had hit in the middle of writing a line
        handle.write(b'{"index": 10, "row": {"path": "' + str(case["folder"]).encode())
    copy = case["root"] / "killed-copy"
    shutil.copytree(out, copy)

    resumed = torchrun(case, out, "--resume")
    output = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 1, output  # bad.jpg is an error row: exit code 1 from every rank
    assert_same_output(out, case["single"])
    info = json.loads((out / "run.json").read_text())
    assert info["resumed_rows"] == done and info["attempts"] == 2 and info["world_size"] == 2
    assert len(info["repaired"]) == 1 and "partial last line" in info["repaired"][0]

    # the same journal resumed by one process (another world size: shards are by input index)
    summary = analyze([case["folder"]], copy, model=case["checkpoint"], device="cpu", resume=True, **OPTIONS)
    assert summary.resumed_rows == done and summary.counts == {"ok": 10, "no_face": 0, "error": 1}
    assert_same_output(copy, case["single"])


class _Crash(RuntimeError):
    pass


def crashing_detector(checkpoint: Path, calls: int) -> Detector:
    """A detector whose ``calls + 1``-th forward pass raises: the run stops midway."""
    detector = Detector.load(checkpoint, device="cpu")
    predict, count = detector.predict, [0]

    def flaky(crops, *, cam=True):  # noqa: ANN001, ANN202
        count[0] += 1
        if count[0] > calls:
            raise _Crash("simulated crash")
        return predict(crops, cam=cam)

    detector.predict = flaky  # type: ignore[method-assign]
    return detector


def test_resume_repairs_a_partial_line_and_refuses_other_settings(case: dict[str, Any], tmp_path: Path, capsys) -> None:
    out, folder, checkpoint = tmp_path / "out", case["folder"], case["checkpoint"]
    with pytest.raises(_Crash):
        analyze([folder], out, model=crashing_detector(checkpoint, 3), device="cpu", **{**OPTIONS, "batch_size": 1})
    (part,) = part_files(out)
    lines = part.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    part.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed while writing the last line
    before = part.read_bytes()

    other = make_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match=r"cannot resume .*SHA-256 .* \(pass the same --model\)"):
        analyze([folder], out, model=other, device="cpu", resume=True, **OPTIONS)
    with pytest.raises(ValueError, match="option frames was 4, now 5.*without --resume to start afresh"):
        analyze([folder], out, model=checkpoint, device="cpu", resume=True, **{**OPTIONS, "frames": 5})
    with pytest.raises(ValueError, match="the inputs changed: 11 files then, 10 now"):
        analyze(sorted(p for p in folder.iterdir() if p.name != "c8.png"), out, model=checkpoint, device="cpu", resume=True, **OPTIONS)
    assert part.read_bytes() == before, "a refused resume leaves the journal alone"

    summary = analyze([folder], out, model=checkpoint, device="cpu", resume=True, **{**OPTIONS, "batch_size": 4})
    assert summary.resumed_rows == len(lines) - 1 and len(summary.rows) == 11
    assert_same_output(out, case["single"])
    assert "partial last line" in json.loads((out / "run.json").read_text())["repaired"][0]

    again = analyze([folder], out, model=checkpoint, device="cpu", resume=True, **OPTIONS)  # finished: nothing to do
    assert again.resumed_rows == 11 and [r.path for r in again.rows] == [r.path for r in summary.rows] and again.exit_code == 1
    code = main(["analyze", str(folder), "--out", str(out), "--model", str(checkpoint), "--resume", *CLI_OPTIONS, "--frames", "6"])
    assert code == 2 and "option frames was 4, now 6" in capsys.readouterr().err


def test_shards_and_journal_checks(case: dict[str, Any], tmp_path: Path) -> None:
    remaining = [0, 2, 3, 5, 7, 8, 9]
    shards = [shard(remaining, r, 3) for r in range(3)]
    assert shards == [[0, 5, 9], [2, 7], [3, 8]] and sorted(sum(shards, [])) == remaining
    with pytest.raises(ValueError, match=r"rank must be in \[0, 3\)"):
        shard(remaining, 3, 3)
    from deepfake_attention.data.inputs import InputItem

    items = [InputItem(f"x{i}.png", "image") for i in range(3)]
    line = lambda i: (json.dumps({"index": i, "row": {"path": f"x{i}.png", "status": "ok"}}) + "\n").encode()  # noqa: E731
    path = tmp_path / "rank-00000.jsonl"
    path.write_bytes(line(0) + line(2) + line(1)[:-5])
    entries, valid, problem = scan_part(path, items)
    assert entries == [(0, "ok"), (2, "ok")] and valid == len(line(0) + line(2)) and "partial last line" in problem
    path.write_bytes(line(0) + b"garbage\n" + line(2))
    with pytest.raises(JournalError, match="line 2 of .* is damaged but is not the last line"):
        scan_part(path, items)
    path.write_bytes(line(2) + line(0))
    with pytest.raises(JournalError, match="not in input order at line 2"):
        scan_part(path, items)


def _slow_predict(predict):  # noqa: ANN001, ANN202
    def slow(self, crops, *, cam=True):  # noqa: ANN001, ANN202
        time.sleep(0.25)
        return predict(self, crops, cam=cam)

    return slow


if __name__ == "__main__":  # torchrun -m tests.test_sharded_analyze slow|fast INPUTS --out ... (the CLI; "slow" sleeps per forward)
    torch.set_num_threads(1)
    if os.environ.get("SHARDED_TEST_PIDS"):
        Path(os.environ["SHARDED_TEST_PIDS"], f"rank-{os.environ['RANK']}.pid").write_text(str(os.getpid()))
    if sys.argv[1] == "slow":
        Detector.predict = _slow_predict(Detector.predict)  # type: ignore[method-assign]
    sys.exit(main(["analyze", *sys.argv[2:]]))
