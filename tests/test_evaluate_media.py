"""``evaluate --media``: whole images and videos through ``analyze``, figures per level, manipulation
type and real source, checked against numbers recomputed by hand from the analysis' results.jsonl.

The set: a real photo (``skimage.data.astronaut()``) and its mirror image, a frame without a face,
a real video (``original`` and ``actors`` sources); fakes of two types, ``SBI`` (the face region
self-blended with ``data.synth.self_blend`` and pasted back into the full frame) and ``Tint`` (the
face region tinted red: an image, a video, and an unreadable file). The tiny Haar checkpoint's
``predict`` is wrapped to score the crop's red share (tests/test_analyze_video.py), so the tinted
fakes score high; the pipeline and the bookkeeping are under test, not the model.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deepfake_attention.analysis.results import ResultRow
from deepfake_attention.cli import main
from deepfake_attention.data.faces import find_faces
from deepfake_attention.data.manifest import ManifestRow, write_manifest
from deepfake_attention.data.synth import self_blend
from deepfake_attention.data.transforms import Preprocess
from deepfake_attention.data.video_writer import write_video
from deepfake_attention.evaluation import evaluate, evaluate_media
from deepfake_attention.evaluation.media import face_scores, media_group
from deepfake_attention.evaluation.media_levels import CISettings, file_bootstrap_auc
from deepfake_attention.evaluation.media_report import media_text_summary
from deepfake_attention.metrics import auc_roc, bootstrap_ci

from .conftest import make_checkpoint
from .test_analyze_video import face_frames, redness_detector

THRESHOLD = 0.45
FAST = {"frames": 4, "progress": False, "threshold": THRESHOLD, "bootstrap": 50, "ci_min": 3}
RED = (60, -20, -20)


@pytest.fixture(scope="module")
def media_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("media")
    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.BILINEAR))
    x0, y0, x1, y1 = find_faces(photo, Preprocess(detector="haar"))[0].crop_box

    def save(name: str, image: np.ndarray) -> str:
        Image.fromarray(image).save(root / name)
        return str(root / name)

    def blended(k: int) -> np.ndarray:
        out = photo.copy()
        out[y0:y1, x0:x1] = self_blend(photo[y0:y1, x0:x1], 0, k).image
        return out

    tinted = photo.astype(np.int16)
    tinted[y0:y1, x0:x1] += np.array(RED, dtype=np.int16)
    write_video(face_frames(10), root / "real.mp4", 10)
    write_video(face_frames(10, tints=(RED,)), root / "tint.mp4", 10)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = [
        ManifestRow(save("real0.png", photo), "real", video_id="original/000"),
        ManifestRow(save("real1.png", np.ascontiguousarray(photo[:, ::-1])), "real", video_id="original/001"),
        ManifestRow(save("noface.png", np.random.default_rng(0).integers(60, 160, (120, 160, 3), dtype=np.uint8)), "real", video_id="original/002"),
        ManifestRow(str(root / "real.mp4"), "real", video_id="actors/01"),
        ManifestRow(save("sbi0.png", blended(0)), "fake", video_id="SBI/000_001"),
        ManifestRow(save("sbi1.png", blended(1)), "fake", video_id="SBI/001_000"),
        ManifestRow(save("tint0.png", np.clip(tinted, 0, 255).astype(np.uint8)), "fake", video_id="Tint/000_001"),
        ManifestRow(str(root / "tint.mp4"), "fake", video_id="Tint/001_000"),
        ManifestRow(str(root / "broken.png"), "fake", video_id="Tint/002_000"),
    ]
    checkpoint = make_checkpoint(root / "ckpt", detector="haar", size=32)
    return {"root": root, "rows": rows, "manifest": write_manifest(rows, root / "manifest.csv"), "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def run(media_set: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object, list[dict]]:
    out = tmp_path_factory.mktemp("out")
    result = evaluate_media(media_set["manifest"], out, model=redness_detector(media_set["checkpoint"]), command="test", **FAST)
    analysed = [json.loads(line) for line in (out / "analysis" / "results.jsonl").read_text().splitlines()]
    return json.loads((out / "metrics.json").read_text()), result, analysed


def _by_hand(rows: list[ManifestRow], analysed: list[dict], level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, scores, is-stand-in, file index) per item, straight from results.jsonl."""
    y, p, missing, file = [], [], [], []
    for index, (row, data) in enumerate(zip(rows, analysed)):
        if data["status"] != "ok":
            values = [0.5]
        elif level == "media":
            values = [data["prob_fake"]]
        elif data["kind"] == "image":
            values = [d["prob_fake"] for d in data["detections"]]
        else:
            used = {t["track_id"] for t in data["tracks"] if t["used"]}
            values = [f["prob_fake"] for frame in data["frames"] for f in frame["faces"] if f["track_id"] in used]
        y += [int(row.is_fake)] * len(values)
        p += values
        missing += [data["status"] != "ok"] * len(values)
        file += [index] * len(values)
    return np.array(y), np.array(p), np.array(missing), np.array(file)


def test_counts_per_type_and_source_equal_the_manifest(media_set: dict, run: tuple) -> None:
    metrics, result, analysed = run
    rows = media_set["rows"]
    assert [Path(d["path"]).name for d in analysed] == [Path(r.path).name for r in rows]
    assert result.exit_code == 1 and result.analysis.counts == {"ok": 7, "no_face": 1, "error": 1}
    assert metrics["counts"] == {"files": 9, "real": 4, "fake": 5, "images": 7, "videos": 2, "ok": 7, "no_face": 1, "error": 1,
                                 "faces": sum(len(face_scores(r)) for r in result.analysis.rows)}
    for level in ("media_level", "face_level"):
        section = metrics["media"][level]
        assert list(section["by_type"]) == ["SBI", "Tint"] and list(section["by_source"]) == ["original", "actors"]
        for kind, group in section["by_type"].items():
            fakes = [r for r in rows if r.video_id.startswith(f"{kind}/")]
            assert group["files"]["fake"]["total"] == len(fakes) and group["files"]["real"]["total"] == 4  # against all reals
        assert section["by_type"]["Tint"]["files"]["fake"] == {"total": 3, "ok": 2, "no_face": 0, "error": 1}
        assert section["overall"]["files"]["real"] == {"total": 4, "ok": 3, "no_face": 1, "error": 0}
        assert section["by_source"]["original"]["files"] == {"total": 3, "ok": 2, "no_face": 1, "error": 0}
        assert section["by_source"]["actors"]["files"]["total"] == 1
    assert [Path(e["path"]).name for e in metrics["errors"]] == ["broken.png"] and "not a recognised image format" in metrics["errors"][0]["message"]
    assert [(Path(e["path"]).name, e["group"]) for e in metrics["no_face"]] == [("noface.png", "original")]
    with open(result.out_dir / "files.csv", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert [(Path(r["path"]).name, r["label"], r["group"], r["status"]) for r in listed][-3:] == [
        ("tint0.png", "fake", "Tint", "ok"), ("tint.mp4", "fake", "Tint", "ok"), ("broken.png", "fake", "Tint", "error")]


@pytest.mark.parametrize("level", ["media", "face"])
def test_auc_tpr_fpr_per_type_by_hand(media_set: dict, run: tuple, level: str) -> None:
    metrics, _, analysed = run
    rows = media_set["rows"]
    y, p, missing, file = _by_hand(rows, analysed, level)
    section = metrics["media"][f"{level}_level"]
    assert metrics["threshold"] == THRESHOLD
    for kind, group in [("overall", section["overall"]), *section["by_type"].items()]:
        of_type = np.array([kind == "overall" or r.video_id.startswith(f"{kind}/") for r in rows])[file]
        chosen = (y == 0) | ((y == 1) & of_type)
        for name, keep in (("scored", chosen & ~missing), ("missing_at_half", chosen)):
            entry = group[name]
            yk, pk = y[keep], p[keep]
            assert (entry["n_real"], entry["n_fake"]) == (int((yk == 0).sum()), int((yk == 1).sum())), (kind, name)
            assert entry["auc"] == pytest.approx(auc_roc(yk, pk)), (kind, name)
            assert entry["tpr"] == pytest.approx(np.mean(pk[yk == 1] >= THRESHOLD)) and entry["fpr"] == pytest.approx(np.mean(pk[yk == 0] >= THRESHOLD))
    tint = section["by_type"]["Tint"]
    assert tint["scored"]["auc"] == 1.0 and tint["scored"]["tpr"] == 1.0  # the red faces
    # the no-face real and the unreadable fake count at 0.5 (>= the threshold: called fake) in the convention's figures
    assert tint["missing_at_half"]["n_real"] == tint["scored"]["n_real"] + 1 and tint["missing_at_half"]["n_fake"] == tint["scored"]["n_fake"] + 1
    assert tint["missing_at_half"]["auc"] < 1.0
    if level == "face":  # a video's faces: every sampled frame of the voting track
        assert section["overall"]["scored"]["n_real"] == 2 + 4 and section["overall"]["scored"]["n_fake"] == 3 + 4


def test_fpr_per_source_and_the_no_face_convention(media_set: dict, run: tuple) -> None:
    metrics, _, analysed = run
    sources = metrics["media"]["media_level"]["by_source"]
    scores = {Path(d["path"]).name: d["prob_fake"] for d in analysed}
    original = [scores["real0.png"], scores["real1.png"]]
    assert sources["original"]["scored"] == {"n": 2, "fpr": pytest.approx(np.mean(np.array(original) >= THRESHOLD))}
    assert sources["original"]["missing_at_half"] == {"n": 3, "fpr": pytest.approx(np.mean(np.array(original + [0.5]) >= THRESHOLD))}
    assert sources["original"]["missing_at_half"]["fpr"] > sources["original"]["scored"]["fpr"]  # noface.png is a false alarm at 0.5
    assert sources["actors"]["scored"]["fpr"] == float(scores["real.mp4"] >= THRESHOLD)
    assert "undecided score" in metrics["media"]["convention"] and metrics["media"]["missing_score"] == 0.5


def test_confidence_intervals(media_set: dict, run: tuple) -> None:
    metrics, _, analysed = run
    y, p, missing, _ = _by_hand(media_set["rows"], analysed, "media")
    overall = metrics["media"]["media_level"]["overall"]
    # one item per file: the file bootstrap is the ordinary stratified bootstrap of the AUC
    expected = bootstrap_ci(auc_roc, y[~missing], p[~missing], n=50, seed=0, stratify=True).to_dict()
    assert overall["scored"]["auc_ci"] == pytest.approx(expected)
    face = metrics["media"]["face_level"]["overall"]["scored"]
    assert face["auc_ci"]["n"] == 50 and face["auc_ci"]["low"] <= face["auc"] <= face["auc_ci"]["high"]
    sbi = metrics["media"]["media_level"]["by_type"]["SBI"]["scored"]  # 2 fakes < ci_min = 3
    assert sbi["auc_ci"] is None and "fewer than ci_min = 3" in sbi["ci_note"]


def test_report_and_summary(run: tuple) -> None:
    metrics, result, _ = run
    page = result.report_path.read_text()
    for text in ("Media level", "Face level", "SBI", "Tint", "actors", "ROC", "broken.png", "noface.png", "undecided score", "analysis/report.html"):
        assert text in page, text
    assert (result.out_dir / "analysis" / "report.html").is_file() and not (result.out_dir / "analysis" / "panels").exists()
    text = media_text_summary(metrics)
    assert "9 files (4 real, 5 fake; 7 images, 2 videos): 7 scored, 1 without a face, 1 unreadable" in text
    assert "error: " in text and "broken.png" in text and "original" in text
    auc = metrics["media"]["media_level"]["by_type"]["Tint"]
    assert f"AUC {auc['scored']['auc']:.3f} / {auc['missing_at_half']['auc']:.3f}" in text


def test_resume_reuses_the_analysis_through_evaluate(media_set: dict, run: tuple) -> None:
    metrics, result, _ = run
    again = evaluate(media_set["manifest"], result.out_dir, model=redness_detector(media_set["checkpoint"]), media=True, resume=True, **FAST)
    assert again.analysis.resumed_rows == 9 and again.metrics["analysis"]["resumed_rows"] == 9
    assert again.metrics["media"] == metrics["media"]


def test_cli_media(media_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    code = main(["evaluate", str(media_set["manifest"]), "--model", str(media_set["checkpoint"]), "--media", "--out", str(out),
                 "--frames", "3", "--save-maps", "panel", "--bootstrap", "0"])
    printed = capsys.readouterr().out
    assert code == 1  # broken.png
    assert "Media level (one score per file)" in printed and "Face level" in printed and "error: " in printed
    assert f"metrics: {out / 'metrics.json'}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["options"]["analyze"]["save_maps"] == "panel" and metrics["options"]["analyze"]["cam"] is True
    assert len(list((out / "analysis" / "panels").glob("*.png"))) == 7
    # the crop-only flags are refused with --media, the media-only ones without it
    assert main(["evaluate", str(media_set["manifest"]), "--media", "--robustness", "--out", str(out)]) == 2
    assert "--robustness apply to manifests of face crops" in capsys.readouterr().err
    assert main(["evaluate", str(media_set["manifest"]), "--save-maps", "panel", "--out", str(out)]) == 2
    assert "--save-maps apply with --media" in capsys.readouterr().err


def test_crop_manifest_with_a_video_needs_media(media_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = str(media_set["manifest"])
    assert main(["evaluate", manifest, "--model", str(media_set["checkpoint"]), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lists 2 video(s)" in err and "evaluate MANIFEST --media" in err
    with pytest.raises(ValueError, match="--media"):
        evaluate(media_set["rows"], tmp_path, model=media_set["checkpoint"], device="cpu")
    assert not (tmp_path / "metrics.json").exists()


def test_input_errors(media_set: dict, tmp_path: Path) -> None:
    rows = media_set["rows"]
    with pytest.raises(ValueError, match="robustness do not apply to media evaluation"):
        evaluate_media(rows, tmp_path, model=media_set["checkpoint"], robustness=True)
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_media([rows[0], ManifestRow(rows[0].path, "real", frame=3)], tmp_path, model=media_set["checkpoint"])
    with pytest.raises(ValueError, match="has no rows in split 'test'"):
        evaluate_media(rows, tmp_path, model=media_set["checkpoint"], split="test")
    with pytest.raises(ValueError, match="calibration and prior_masks apply to face-crop manifests"):
        evaluate(rows, tmp_path, model=media_set["checkpoint"], media=True, calibration=rows)
    with pytest.raises(ValueError, match="save_maps must be one of"):
        evaluate_media(rows, tmp_path, save_maps="some")


def test_groups_and_face_scores() -> None:
    assert media_group(ManifestRow("/d/x.mp4", "fake", video_id="Celeb-synthesis/id0_id1_0000")) == "Celeb-synthesis"
    assert media_group(ManifestRow("/d/x.mp4", "real", video_id="YouTube-real/00170")) == "YouTube-real"
    assert media_group(ManifestRow("/d/fake/Deepfakes/a/x.png", "fake")) == "Deepfakes"  # a folder manifest: the fakes' folder
    assert media_group(ManifestRow("/d/fake/x.png", "fake")) == "fake"
    assert media_group(ManifestRow("/d/real/x.png", "real", video_id="r0")) == "real"
    assert media_group(ManifestRow("/d/other/x.png", "fake")) == "fake"
    frames = [{"faces": [{"track_id": 0, "prob_fake": 0.2}, {"track_id": 1, "prob_fake": 0.9}]}, {"faces": [{"track_id": 0, "prob_fake": 0.4}]}]
    video = ResultRow("v.mp4", "video", "ok", prob_fake=0.3, label="real",
                      extra={"frames": frames, "tracks": [{"track_id": 0, "used": True}, {"track_id": 1, "used": False}]})
    assert face_scores(video) == [0.2, 0.4]  # the passer-by's face does not vote
    assert face_scores(ResultRow("v.mp4", "video", "no_face")) == []


def test_file_bootstrap_draws_whole_files() -> None:
    rng = np.random.default_rng(3)
    y, p = np.repeat([0, 1], 12), np.concatenate([rng.random(12) * 0.7, 0.3 + rng.random(12) * 0.7])
    plain = bootstrap_ci(auc_roc, y, p, n=40, seed=5, stratify=True)
    # every file twice: the same AUC on every replicate, so the same interval, if and only if files are drawn whole
    twice = file_bootstrap_auc(np.repeat(np.arange(24), 2), np.repeat(y, 2), np.repeat(p, 2), CISettings(replicates=40, seed=5))
    assert twice.to_dict() == pytest.approx(plain.to_dict())
