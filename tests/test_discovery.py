"""What discovery passes over is listed with a reason, never opened, never silently lost: FIFOs,
sockets, devices, broken links, link loops, links to folders, unreadable entries, hidden and
non-media files, and output folders (this run's ``--out``, earlier runs') inside the inputs."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepfake_attention import analyze
from deepfake_attention.cli import main
from deepfake_attention.data import inputs
from deepfake_attention.data.inputs import discover

from .conftest import write_image

REASONS = {
    "pipe.jpg": "a named pipe (FIFO), not a regular file: not opened",
    "sock.png": "a socket, not a regular file: not opened",
    "null.png": "a character device, not a regular file: not opened",
    "broken.png": "a broken symbolic link (its target does not exist)",
    "loop.png": "a symbolic link loop (the link leads back to itself)",
    "linked": "a symbolic link to a folder: not followed (name the folder itself to analyse it)",
    "locked": "the folder cannot be listed (permission denied)",
    "secret.png": "cannot be examined (permission denied)",
    "notes.txt": "not an image or video file name (extension .txt)",
    ".hidden.png": "hidden (the name starts with '.')",
}


def finishes(call: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``call()`` in a thread; fails (instead of hanging the suite) when it blocks, as opening a FIFO would."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked: something opened a FIFO"
    return result["value"]


@pytest.fixture
def odd_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every kind of entry discovery must pass over, beside two good images. Unreadable entries are
    simulated (tests run as root, where chmod 000 hides nothing)."""
    folder = tmp_path / "in"
    write_image(folder / "good.png")
    write_image(folder / "sub" / "inner.png")
    (folder / "notes.txt").write_text("not media")
    write_image(folder / ".hidden.png")
    os.mkfifo(folder / "pipe.jpg")
    monkeypatch.chdir(folder)  # a short relative name for the socket (AF_UNIX paths are limited to ~100 bytes)
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock.png")
    monkeypatch.chdir(tmp_path)
    os.symlink(os.devnull, folder / "null.png")
    os.symlink(folder / "missing.png", folder / "broken.png")
    os.symlink("loop.png", folder / "loop.png")
    os.symlink(folder / "sub", folder / "linked")
    os.symlink(".", folder / "sub" / "self")  # would loop if followed
    (folder / "locked").mkdir()
    write_image(folder / "locked" / "x.png")
    write_image(folder / "secret.png")
    real_list, real_stat = inputs._list_folder, inputs._stat

    def list_folder(path: str) -> list[str]:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_list(path)

    def stat(path: str, *, follow_symlinks: bool) -> os.stat_result:
        if Path(path).name == "secret.png":
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(inputs, "_list_folder", list_folder)
    monkeypatch.setattr(inputs, "_stat", stat)
    yield folder
    server.close()


def test_every_entry_passed_over_is_listed_with_its_reason(odd_folder: Path) -> None:
    items, skipped = finishes(lambda: discover([odd_folder]))
    assert [item.path for item in items] == [str(odd_folder / "good.png"), str(odd_folder / "sub" / "inner.png")]
    listed = {Path(entry.path).relative_to(odd_folder).as_posix(): entry.reason for entry in skipped}
    assert listed == {**REASONS, "sub/self": REASONS["linked"]}
    assert [entry.path for entry in skipped] == sorted(entry.path for entry in skipped)  # sorted order, like the rows


def test_analyze_lists_skips_in_run_json_and_a_named_fifo_is_an_error_row(odd_folder: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "clip.mp4")  # named on the command line: an error row, the video decoder never opens it
    out = tmp_path / "out"
    summary = finishes(lambda: analyze([odd_folder, odd_folder / "pipe.jpg", tmp_path / "clip.mp4"], out, model=tiny_checkpoint,
                                       device="cpu", progress=False))
    rows = {Path(row.path).name: row for row in summary.rows}
    assert [rows[name].status for name in ("good.png", "inner.png")] == ["ok", "ok"]
    for name in ("pipe.jpg", "clip.mp4"):
        assert rows[name].status == "error" and rows[name].error == \
            "this is a named pipe (FIFO), not a regular file: it was not opened (reading it could wait forever)"
    assert summary.exit_code == 1 and summary.counts == {"ok": 2, "no_face": 0, "error": 2}
    run = json.loads((out / "run.json").read_text())
    skipped = {Path(entry["path"]).relative_to(odd_folder).as_posix(): entry["reason"] for entry in run["skipped"]}
    expected = {name: reason for name, reason in {**REASONS, "sub/self": REASONS["linked"]}.items() if name != "pipe.jpg"}
    assert skipped == expected  # pipe.jpg is a row (named explicitly), not also a skip
    assert run["skipped_files"] == [entry["path"] for entry in run["skipped"]] == summary.skipped
    assert all(entry["path_bytes"] is None for entry in run["skipped"])


def test_outputs_inside_the_inputs_are_not_analysed(tiny_checkpoint: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_image(photos / "a.png")
    write_image(photos / "b.png")
    out = photos / "results"
    options = {"model": tiny_checkpoint, "device": "cpu", "progress": False}
    first = analyze([photos], out, **options)
    second = analyze([photos], out, **options)  # the panels of the first run are inside the inputs now
    for summary in (first, second):
        assert [Path(row.path).name for row in summary.rows] == ["a.png", "b.png"]
        assert [(entry.path, entry.reason) for entry in summary.skipped_entries] == [
            (str(out), "the output folder of this run (--out): its files are not inputs")]
    assert len(list((out / "panels").glob("*.png"))) == 2

    # an earlier run's folder (run.json) and an unfinished one (its journal) inside the inputs, another --out
    unfinished = photos / "killed"
    (unfinished / "parts").mkdir(parents=True)
    (unfinished / "parts" / "manifest.json").write_text(json.dumps({"fingerprint": {}}))
    write_image(unfinished / "panels" / "p.png")
    (photos / "look-alike").mkdir()
    (photos / "look-alike" / "run.json").write_text(json.dumps({"someone": "else's"}))  # not this tool's: searched
    write_image(photos / "look-alike" / "c.png")
    third = analyze([photos], tmp_path / "elsewhere", **options)
    assert [Path(row.path).name for row in third.rows] == ["a.png", "b.png", "c.png"]
    assert [(Path(entry.path).relative_to(photos).as_posix(), entry.reason) for entry in third.skipped_entries] == [
        ("killed", "the output folder of an earlier deepfake-attention run (it holds parts/manifest.json): its files are not inputs"),
        ("look-alike/run.json", "not an image or video file name (extension .json)"),
        ("results", "the output folder of an earlier deepfake-attention run (it holds run.json): its files are not inputs"),
    ]


def test_out_cannot_be_the_input_folder_itself(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    write_image(photos / "a.png")
    code = main(["analyze", str(photos), "--out", str(photos), "--model", str(tiny_checkpoint), "--quiet"])
    assert code == 2
    assert f"--out {photos} is the input folder {photos} itself" in capsys.readouterr().err
    assert not (photos / "run.json").exists()


def test_a_deeply_nested_archive_is_walked(tmp_path: Path) -> None:
    levels = [tmp_path / "in"]
    for _ in range(1100):  # deeper than Python's recursion limit (made level by level: pathlib's mkdir recurses)
        levels.append(levels[-1] / "d")
    try:
        for level in levels:
            os.mkdir(level)
        write_image(levels[-1] / "x.png")
        items, skipped = discover([levels[0]])
        assert [item.path for item in items] == [str(levels[-1] / "x.png")] and skipped == []
    finally:  # shutil.rmtree (pytest's clean-up) recurses too: take the tree down from the bottom
        (levels[-1] / "x.png").unlink(missing_ok=True)
        for level in reversed(levels):
            if level.is_dir():
                level.rmdir()
