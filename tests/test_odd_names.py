"""File names that are not UTF-8 (``caf\\xe9.png`` from a Latin-1 system): analysed like any other,
written in one escaped form in every output, with ``path_bytes`` keeping them apart from a file
literally named with a backslash; journals and resumed runs survive them."""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import os
from pathlib import Path

import pytest

from deepfake_attention import analyze
from deepfake_attention.analysis import pipeline
from deepfake_attention.analysis.image import rendered_name
from deepfake_attention.analysis.options import AnalyzeOptions
from deepfake_attention.analysis.results import read_results
from deepfake_attention.analysis.sharding import fingerprint
from deepfake_attention.cli import main
from deepfake_attention.data.inputs import InputItem
from deepfake_attention.files import display_path, path_fields, safe_stem

from .conftest import random_rgb, write_image

LATIN1 = b"caf\xe9.png"
"""``café.png`` as a Latin-1 system wrote it: the byte 0xE9 is not UTF-8."""


def latin1_file(folder: Path, data: bytes) -> str:
    """Create ``folder/caf\\xe9.png`` (raw bytes) holding ``data``; its path as Python sees it (surrogate-escaped)."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + LATIN1)
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except (OSError, UnicodeError) as error:  # a file system that insists on UTF-8 names
        pytest.skip(f"cannot create a non-UTF-8 file name here: {error}")
    return path


@pytest.fixture
def twins(tmp_path: Path) -> dict[str, object]:
    """A folder with a good image, the Latin-1 name and its escaped twin (a literal backslash)."""
    folder = tmp_path / "in"
    write_image(folder / "a.png")
    literal = write_image(folder / "caf\\xe9.png", random_rgb(40, 40, seed=2))
    latin = latin1_file(folder, write_image(tmp_path / "src.png", random_rgb(44, 36, seed=3)).read_bytes())
    return {"folder": folder, "latin": latin, "literal": str(literal), "shown": f"{folder}/caf\\xe9.png", "hex": os.fsencode(latin).hex()}


def test_written_form_of_a_path() -> None:
    latin, literal = "caf\udce9.png", "caf\\xe9.png"
    assert display_path(latin) == display_path(literal) == literal
    assert path_fields(latin) == {"path": literal, "path_bytes": "636166e92e706e67"}
    assert path_fields(literal) == {"path": literal, "path_bytes": None}
    assert path_fields("naïve 😀.png") == {"path": "naïve 😀.png", "path_bytes": None}
    assert display_path("x\ud800") == "x\\xed\\xa0\\x80"  # a lone surrogate that no file system made: still writable
    assert safe_stem(latin) == "caf" and safe_stem(literal) == "caf_xe9"
    assert rendered_name(latin) != rendered_name(literal) and rendered_name(latin).startswith("caf-")
    assert rendered_name("a/b.png") == rendered_name("a/b.png")  # UTF-8 names keep their old hash
    options = dataclasses.asdict(AnalyzeOptions())
    assert fingerprint([InputItem(latin, "image")], options) != fingerprint([InputItem(literal, "image")], options)


def test_non_utf8_name_is_analysed_and_kept_apart_from_its_escaped_twin(twins: dict, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder, shown, hexed = twins["folder"], twins["shown"], twins["hex"]
    code = main(["analyze", str(folder), twins["latin"], "--out", str(out), "--model", str(tiny_checkpoint), "--device", "cpu",
                 "--save-maps", "all", "--quiet"])
    assert code == 0
    rows = read_results(out)
    assert [(r["path"], r["path_bytes"], r["status"]) for r in rows] == [
        (f"{folder}/a.png", None, "ok"), (shown, None, "ok"), (shown, hexed, "ok")]  # "\\" sorts before the 0xE9 byte
    assert os.path.isfile(os.fsdecode(bytes.fromhex(rows[2]["path_bytes"])))  # path_bytes names the very file
    assert rows[1]["input_sha256"] != rows[2]["input_sha256"]  # two files, two rows, not one twice

    panels = [r["panel"] for r in rows]
    maps = [r["detections"][0][key] for r in rows for key in ("attention_png", "gradcampp_png")]
    assert len(set(panels)) == 3 and len(set(maps)) == 6 and all((out / name).is_file() for name in panels + maps)
    assert panels[2].startswith("panels/caf-") and panels[1].startswith("panels/caf_xe9-")

    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["path"], r["path_bytes"]) for r in table] == [(f"{folder}/a.png", ""), (shown, ""), (shown, hexed)]
    with open(out / "faces.csv", newline="", encoding="utf-8") as handle:
        faces = list(csv.DictReader(handle))
    assert [(r["path"], r["path_bytes"]) for r in faces] == [(f"{folder}/a.png", ""), (shown, ""), (shown, hexed)]
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["inputs"] == [str(folder), shown] and run["counts"]["ok"] == 3 and run["skipped"] == []
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count(f"<td>{html.escape(shown)}</td>") == 2


def test_journal_and_resume_survive_such_names(twins: dict, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after two rows leaves a journal with the escaped name; --resume finishes it row for row."""
    fresh = analyze([twins["folder"]], tmp_path / "fresh", model=tiny_checkpoint, device="cpu", save_maps="none", progress=False)
    real_row = pipeline.make_image_row
    calls = []

    def dies_on_the_third(*args: object, **kwargs: object):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_row(*args, **kwargs)

    monkeypatch.setattr(pipeline, "make_image_row", dies_on_the_third)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        analyze([twins["folder"]], out, model=tiny_checkpoint, device="cpu", save_maps="none", progress=False, batch_size=1)
    journal = b"".join(path.read_bytes() for path in sorted((out / "parts").glob("attempt-*/rank-*.jsonl")))
    assert journal.count(b"\n") == 2 and b"caf\\\\xe9.png" in journal  # the literal twin, in its JSON form
    monkeypatch.setattr(pipeline, "make_image_row", real_row)
    resumed = analyze([twins["folder"]], out, model=tiny_checkpoint, device="cpu", save_maps="none", progress=False, resume=True)
    assert resumed.resumed_rows == 2 and resumed.exit_code == 0
    def key(rows: list[dict]) -> list[tuple]:
        return [(r["path"], r["path_bytes"], r["status"], r["input_sha256"]) for r in rows]

    assert key(read_results(out)) == key(read_results(tmp_path / "fresh")) == key([r.to_json() for r in fresh.rows])
    assert read_results(out)[2]["path_bytes"] == twins["hex"]
