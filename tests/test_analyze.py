"""``analyze`` end to end on a tiny checkpoint: rows, files, errors, exit codes, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_attention import analyze
from deepfake_attention.analysis.results import FACE_FIELDS, ROW_FIELDS, read_results
from deepfake_attention.cli import main

from .conftest import make_checkpoint, random_rgb, write_image


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_image(folder / "a_good.png")
    write_image(folder / "sub" / "b_good.jpg", random_rgb(60, 80, seed=1), quality=90)
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_text.jpg").write_text("not an image")
    good = (folder / "a_good.png").read_bytes()
    (folder / "e_truncated.png").write_bytes(good[: len(good) // 3])
    Image.new("1", (9000, 9000)).save(folder / "f_bomb.png")
    (folder / "notes.txt").write_text("skipped: not media")
    (folder / ".hidden.png").write_bytes(good)
    return folder


def test_rows_in_order_with_errors_kept(mixed_folder: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = analyze([mixed_folder], out, model=tiny_checkpoint, device="cpu", batch_size=2, progress=False)
    names = [Path(row.path).name for row in summary.rows]
    assert names == ["a_good.png", "c_empty.png", "d_text.jpg", "e_truncated.png", "f_bomb.png", "b_good.jpg"]
    status = {Path(r.path).name: (r.status, r.error) for r in summary.rows}
    assert status["a_good.png"][0] == status["b_good.jpg"][0] == "ok"
    assert "empty" in status["c_empty.png"][1]
    assert "not a recognised image format" in status["d_text.jpg"][1]
    assert "truncated or corrupted" in status["e_truncated.png"][1]
    assert "decompression-bomb guard" in status["f_bomb.png"][1]
    assert summary.counts == {"ok": 2, "no_face": 0, "error": 4}
    assert summary.exit_code == 1
    assert sorted(Path(p).name for p in summary.skipped) == [".hidden.png", "notes.txt"]

    rows = read_results(out)
    assert [r["path"] for r in rows] == [r.path for r in summary.rows]
    for row in rows:
        assert set(ROW_FIELDS) | {"detections"} <= set(row)
        if row["status"] == "ok":
            assert 0.0 <= row["prob_fake"] <= 1.0 and row["label"] in ("real", "fake")
            assert row["label"] == ("fake" if row["prob_fake"] >= row["threshold"] else "real")
            assert row["faces"] == 1 and len(row["detections"]) == 1 and (out / row["panel"]).is_file()
            assert len(row["input_sha256"]) == 64 and row["model_sha256"]
        else:
            assert row["prob_fake"] is None and row["label"] is None and row["panel"] is None
    good = next(r for r in rows if r["path"].endswith("b_good.jpg"))
    assert good["detections"][0]["box"] == [0, 0, 80, 60]
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == ROW_FIELDS and len(table) == 6
    assert table[1]["prob_fake"] == "" and table[1]["status"] == "error"
    with open(out / "faces.csv", newline="") as handle:
        faces = list(csv.DictReader(handle))
    assert tuple(faces[0]) == FACE_FIELDS and len(faces) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == summary.counts and run["exit_code"] == 1 and run["model"]["trained"] is True
    assert "report.html" in {p.name for p in out.iterdir()}
    assert "a_good.png" in (out / "report.html").read_text()


def test_probabilities_follow_the_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """P(fake) = softmax(logits / T)[fake], the image value is the max over faces; labels follow the threshold."""
    from deepfake_attention import Detector

    image = write_image(tmp_path / "x.png")
    detector = Detector.load(tiny_checkpoint, device="cpu")
    crop = np.asarray(Image.open(image).convert("RGB"))
    prediction = detector.predict([crop])[0]
    logits = np.array(prediction.logits)
    expected = np.exp(logits[1]) / np.exp(logits).sum()
    assert prediction.prob_fake == pytest.approx(expected, rel=1e-5)
    low = analyze([image], tmp_path / "o1", model=detector, threshold=0.0, progress=False)
    high = analyze([image], tmp_path / "o2", model=detector, threshold=1.0, progress=False)
    assert low.rows[0].label == "fake" and high.rows[0].label == "real"
    assert low.rows[0].prob_fake == pytest.approx(expected, rel=1e-5)


def test_save_maps_and_no_cam(tiny_checkpoint: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "in" / "face one.png")
    full = analyze([image], tmp_path / "all", model=tiny_checkpoint, device="cpu", save_maps="all", progress=False)
    det = full.rows[0].detections[0]
    assert det.attention_png.startswith("attention/face_one-") and det.attention_png.endswith("-f0.png")
    assert (tmp_path / "all" / det.gradcampp_png).is_file()
    bare = analyze([image], tmp_path / "none", model=tiny_checkpoint, device="cpu", save_maps="none", cam=False, progress=False)
    assert bare.rows[0].panel is None and bare.rows[0].detections[0].gradcampp_png is None
    assert bare.rows[0].prob_fake == pytest.approx(full.rows[0].prob_fake, abs=1e-6)


def test_untrained_outputs_are_stamped(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "u", trained=False)
    image = write_image(tmp_path / "x.png")
    summary = analyze([image], tmp_path / "o", model=checkpoint, progress=False)
    assert summary.untrained and summary.rows[0].model_trained is False
    assert "UNTRAINED" in (tmp_path / "o" / "report.html").read_text()
    assert "UNTRAINED" in json.loads((tmp_path / "o" / "run.json").read_text())["untrained_warning"]


def test_workers_give_the_same_rows(mixed_folder: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    inline = analyze([mixed_folder], tmp_path / "a", model=tiny_checkpoint, device="cpu", progress=False)
    pooled = analyze([mixed_folder], tmp_path / "b", model=tiny_checkpoint, device="cpu", workers=2, progress=False)
    assert [(r.path, r.status, r.error, r.prob_fake) for r in inline.rows] == [(r.path, r.status, r.error, r.prob_fake) for r in pooled.rows]


def test_cli_exit_codes_and_table(mixed_folder: Path, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(["analyze", str(mixed_folder), "--out", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 1 and "a_good.png" in printed and "2 ok, 0 no_face, 4 error" in printed
    good = mixed_folder / "a_good.png"
    assert main(["analyze", str(good), "--out", str(tmp_path / "p"), "--model", str(tiny_checkpoint), "--quiet"]) == 0
    assert main(["analyze", str(good), "--out", str(tmp_path / "q"), "--model", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert main(["analyze", str(good), "--out", str(tmp_path / "r"), "--model", str(tiny_checkpoint), "--threshold", "3", "--quiet"]) == 2


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "deepfake_attention", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("deepfake-attention ")
