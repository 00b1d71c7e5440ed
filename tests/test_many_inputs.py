"""``analyze`` over a folder of 500+ mixed entries, as a new user's archive looks: good images, every
bad kind of file, special files and odd names. Every analysable file gets exactly one row, every
other entry is listed with a reason, ``results.csv`` and ``results.jsonl`` agree row for row, and
the exit code is the documented one (1: some rows are errors)."""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_attention.cli import main

from .conftest import make_checkpoint

ODD_NAMES = ["space d.png", "naïve.png", "emoji 😀.jpg", "new\nline.png", "tab\there.png", "quote\".png", "comma,semi;.png",
             "UPPER.PNG", "dots...png", "-dash.png", "caf\\xe9.png", "back\\slash.png", "percent%41.png", "ünï cödé.jpeg"]


def raw(path: str) -> bytes:
    return os.fsencode(path)


def row_bytes(row: dict) -> bytes:
    """The file a row names: its ``path_bytes`` when given, else its (UTF-8) path."""
    return bytes.fromhex(row["path_bytes"]) if row["path_bytes"] else os.fsencode(row["path"])


def build(folder: Path) -> tuple[dict[bytes, str], dict[bytes, str], list[socket.socket]]:
    """Create the archive; returns what each entry must become: rows (raw path -> status) and skips
    (raw path -> reason prefix), and the sockets to close."""
    rows: dict[bytes, str] = {}
    skips: dict[bytes, str] = {}
    rng = np.random.default_rng(0)
    png = bytearray()

    def image(path: Path | str, size: int = 12, fmt: str = "PNG") -> None:
        Image.fromarray(rng.integers(0, 256, (size, size + 2, 3), dtype=np.uint8)).save(path, format=fmt)
        rows[raw(str(path))] = "ok"

    for k in range(6):
        (folder / f"d{k}" / "deeper").mkdir(parents=True)
    for k in range(400):  # good images, spread over folders
        where = folder if k < 100 else folder / f"d{k % 6}" / ("deeper" if k % 2 else "")
        image(where / f"img{k:03d}.{'png' if k % 3 else 'jpg'}", fmt="PNG" if k % 3 else "JPEG")
    png += (folder / "img001.png").read_bytes()
    (folder / "odd").mkdir()
    for name in ODD_NAMES:
        image(folder / "odd" / name)
    for k in range(6):  # names that are not UTF-8 (Latin-1 bytes), and their escaped look-alikes above
        path = os.fsdecode(raw(str(folder / "odd")) + b"/l\xe9" + str(k).encode() + b"\xff.png")
        try:
            image(path)
        except (OSError, UnicodeError):
            pytest.skip("this file system refuses names that are not UTF-8")
    bad = folder / "bad"
    bad.mkdir()
    for k in range(20):
        (bad / f"empty{k}.png").write_bytes(b"")
        (bad / f"text{k}.jpg").write_text("not an image")
        (bad / f"cut{k}.png").write_bytes(bytes(png[: len(png) // 2]))
        for name in (f"empty{k}.png", f"text{k}.jpg", f"cut{k}.png"):
            rows[raw(str(bad / name))] = "error"
    Image.new("1", (9000, 9000)).save(bad / "bomb.png")
    rows[raw(str(bad / "bomb.png"))] = "error"
    special = folder / "special"
    special.mkdir()
    for k in range(10):
        (folder / f"notes{k}.txt").write_text("x")
        skips[raw(str(folder / f"notes{k}.txt"))] = "not an image or video file name"
        (folder / f".hidden{k}.png").write_bytes(bytes(png))
        skips[raw(str(folder / f".hidden{k}.png"))] = "hidden"
    for k in range(5):
        os.mkfifo(special / f"pipe{k}.jpg")
        skips[raw(str(special / f"pipe{k}.jpg"))] = "a named pipe (FIFO)"
        os.symlink(special / f"gone{k}.png", special / f"broken{k}.png")
        skips[raw(str(special / f"broken{k}.png"))] = "a broken symbolic link"
        os.symlink(f"loop{k}.png", special / f"loop{k}.png")
        skips[raw(str(special / f"loop{k}.png"))] = "a symbolic link loop"
        os.symlink(folder / f"d{k}", special / f"dirlink{k}")
        skips[raw(str(special / f"dirlink{k}"))] = "a symbolic link to a folder"
        os.symlink(os.devnull, special / f"dev{k}.png")
        skips[raw(str(special / f"dev{k}.png"))] = "a character device"
        os.symlink(folder / "img001.png", special / f"filelink{k}.png")  # links to files are followed
        rows[raw(str(special / f"filelink{k}.png"))] = "ok"
    sockets = []
    cwd = os.getcwd()
    os.chdir(special)
    try:
        for k in range(3):
            sockets.append(socket.socket(socket.AF_UNIX))
            sockets[-1].bind(f"sock{k}.png")
            skips[raw(str(special / f"sock{k}.png"))] = "a socket"
    finally:
        os.chdir(cwd)
    old = folder / "old-run"  # the output folder of an earlier run, left inside the archive
    (old / "panels").mkdir(parents=True)
    image(old / "panels" / "p.png")
    del rows[raw(str(old / "panels" / "p.png"))]
    (old / "run.json").write_text(json.dumps({"command": "x", "counts": {}, "exit_code": 0, "package_version": "0"}))
    skips[raw(str(old))] = "the output folder of an earlier deepfake-attention run"
    skips[raw(str(folder / "results"))] = "the output folder of this run"  # --out inside the input folder
    return rows, skips, sockets


@pytest.mark.slow
def test_analyze_a_folder_of_500_mixed_entries(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    checkpoint = make_checkpoint(tmp_path / "ckpt", size=16)
    rows_expected, skips_expected, sockets = build(folder)
    assert len(rows_expected) + len(skips_expected) >= 500
    out = folder / "results"
    start = time.perf_counter()
    try:
        code = main(["analyze", str(folder), "--out", str(out), "--model", str(checkpoint), "--device", "cpu", "--save-maps", "none",
                     "--batch-size", "64", "--quiet"])
    finally:
        for sock in sockets:
            sock.close()
    seconds = time.perf_counter() - start
    assert code == 1  # documented: 1 when any row is an error

    with open(out / "results.jsonl", encoding="utf-8") as handle:
        jsonl = [json.loads(line) for line in handle]
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    got = {row_bytes(row): row["status"] for row in jsonl}
    assert len(got) == len(jsonl) == len(rows_expected)  # one row per analysable file, none twice
    assert got == rows_expected
    assert all(os.path.isfile(os.fsdecode(row_bytes(row))) for row in jsonl)
    assert len(table) == len(jsonl)  # nothing lost between the two files
    for line, cells in zip(jsonl, table):
        assert (cells["path"], cells["path_bytes"] or None, cells["status"], cells["error"] or None) == \
            (line["path"], line["path_bytes"], line["status"], line["error"])
        assert cells["prob_fake"] == ("" if line["prob_fake"] is None else f"{line['prob_fake']:.6f}")
    assert all(row["error"] for row in jsonl if row["status"] == "error")

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["rows"] == len(jsonl) and run["exit_code"] == 1
    assert run["counts"] == {"ok": sum(s == "ok" for s in rows_expected.values()), "no_face": 0,
                             "error": sum(s == "error" for s in rows_expected.values())}
    listed = {row_bytes(entry): entry["reason"] for entry in run["skipped"]}
    assert set(listed) == set(skips_expected)  # every entry passed over is listed, nothing else
    assert all(listed[path].startswith(prefix) for path, prefix in skips_expected.items())
    assert run["skipped_files"] == [entry["path"] for entry in run["skipped"]]
    print(f"\n{len(jsonl)} rows, {len(listed)} skipped, analyze took {seconds:.1f} s")
