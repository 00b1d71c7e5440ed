"""``evaluate`` end to end on a tiny checkpoint and 16 crops: metrics.json against independent
computations from Detector.predict on the same crops, errors, robustness, video level, the report."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from deepfake_attention.data.manifest import ManifestRow, write_manifest
from deepfake_attention.data.perturb import PERTURBATIONS, apply_perturbation, perturbation_name
from deepfake_attention.detector import Detector
from deepfake_attention.evaluation.report import text_summary
from deepfake_attention.evaluation.run import EvaluateOptions, evaluate
from deepfake_attention.evaluation.sections import MaskMean, calibration_section, equivalent_threshold, jsonable
from deepfake_attention.metrics import apply_affine, boundary_map, expected_calibration_error, fit_affine, fit_temperature, localization_report, prior_map

from .conftest import make_checkpoint

SIZE = 24
FAST = {"device": "cpu", "batch_size": 8, "bootstrap": 20, "faithfulness_limit": 3, "top_k": 2, "progress": False}


def _crop(k: int, fake: bool) -> tuple[np.ndarray, np.ndarray]:
    """A noisy face-sized crop; a fake has a bright patch, its soft mask a blurred square there."""
    rng = np.random.default_rng(k)
    image = rng.integers(40, 140, size=(SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=np.float64)
    if fake:
        y, x = 4 + k % 8, 3 + (3 * k) % 9
        mask[y:y + 10, x:x + 10] = 1.0
        mask = np.clip(np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((12, 12)).resize((SIZE, SIZE), Image.BILINEAR)) / 255.0, 0, 1)
        image = np.clip(image + 110 * mask[..., None], 0, 255).astype(np.uint8)
    return image, (np.rint(mask * 255)).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evalset")
    rows, crops, masks, labels = [], [], [], []
    for k in range(16):
        fake = k % 2 == 1
        image, mask = _crop(k, fake)
        Image.fromarray(image).save(root / f"c{k:02d}.png")
        mask_path = ""
        if fake:
            Image.fromarray(mask).save(root / f"m{k:02d}.png")
            mask_path = str(root / f"m{k:02d}.png")
        video = f"{'fake' if fake else 'real'}{k // 4}"
        rows.append(ManifestRow(path=str(root / f"c{k:02d}.png"), label="fake" if fake else "real", mask=mask_path, video_id=video, frame=k))
        crops.append(image)
        masks.append(mask.astype(np.float64) / 255.0)
        labels.append(int(fake))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows.insert(5, ManifestRow(path=str(root / "broken.png"), label="fake"))
    manifest = write_manifest(rows, root / "manifest.csv")
    checkpoint = make_checkpoint(root / "ckpt", size=SIZE)
    detector = Detector.load(checkpoint, device="cpu")
    preds = detector.predict(crops)
    return {"root": root, "rows": rows, "manifest": manifest, "checkpoint": checkpoint, "detector": detector, "crops": np.stack(crops),
            "masks": np.stack(masks), "y": np.array(labels), "preds": preds, "probs": np.array([p.prob_fake for p in preds])}


@pytest.fixture(scope="module")
def run(dataset: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    fake_probs = np.sort(dataset["probs"][dataset["y"] == 1])
    threshold = float(fake_probs[3])  # half the fakes are "correctly classified": Average Drop has samples
    out = tmp_path_factory.mktemp("out")
    result = evaluate(dataset["manifest"], out, model=dataset["checkpoint"], calibration=dataset["rows"], robustness=True, threshold=threshold,
                      command="deepfake-attention evaluate test", **FAST)
    return json.loads((out / "metrics.json").read_text()), result


def test_metrics_match_independent_computation(dataset: dict, run: tuple) -> None:
    metrics, result = run
    y, p = dataset["y"], dataset["probs"]
    assert result.metrics == metrics and result.exit_code == 1
    assert metrics["counts"] == {"rows": 17, "evaluated": 16, "errors": 2, "real": 8, "fake": 8, "fake_with_mask": 8, "fake_without_mask": 0, "calibration": 16}
    assert metrics["model"]["sha256"] == dataset["detector"].model_sha256 and metrics["model"]["temperature"] == 1.0
    assert metrics["options"]["robustness"] is True and metrics["command"] == "deepfake-attention evaluate test"
    c = metrics["classification"]
    assert c["auc_roc"] == pytest.approx(roc_auc_score(y, p))
    t = metrics["threshold"]
    pred = p >= t
    assert c["confusion"] == {"tn": int((~pred & (y == 0)).sum()), "fp": int((pred & (y == 0)).sum()),
                              "fn": int((~pred & (y == 1)).sum()), "tp": int((pred & (y == 1)).sum())}
    assert c["auc_ci"]["n"] == 20 and c["auc_ci"]["low"] <= c["auc_roc"] <= c["auc_ci"]["high"]
    assert c["operating_point"]["chosen_on"] == "calibration" and c["operating_point"]["target_fpr"] == 0.05
    assert isinstance(c["accuracy"], float) and isinstance(c["eer"], float)


def test_average_drop_by_hand(dataset: dict, run: tuple) -> None:
    metrics, _ = run
    y, p, t = dataset["y"], dataset["probs"], metrics["threshold"]
    correct = np.flatnonzero((y == 1) & (p >= t))
    assert correct.size == 5  # fake_probs[3..7] are >= the threshold
    cams = np.stack([dataset["preds"][i].gradcampp for i in correct])
    explained = np.clip(np.rint(dataset["crops"][correct] * cams[..., None]), 0, 255).astype(np.uint8)
    full = p[correct]
    o = np.array([q.prob_fake for q in dataset["detector"].predict(list(explained), cam=False)])
    drop = 100 * np.mean(np.maximum(0, full - o) / full)
    f = metrics["faithfulness"]["gradcampp"]
    assert f["count"] == 5 and f["average_drop"] == pytest.approx(drop, abs=1e-6)
    assert f["increase_in_confidence"] == pytest.approx(100 * np.mean(full < o))
    causal, rnd = metrics["faithfulness"]["causal"], metrics["faithfulness"]["randomization"]
    assert causal["count"] == 3 and set(causal) >= {"gradcampp", "attention", "random"}
    assert 0 <= causal["gradcampp"]["deletion"]["auc"]["mean"] <= 1 and causal["random"]["insertion"]["auc"]["count"] == 3
    # re-initialising the classifier cannot change the attention gate (computed before it)
    assert rnd["classifier"]["attention"]["spearman"]["mean"] == pytest.approx(1.0)
    assert rnd["all_layers"]["layers"][0] == "classifier.0" and len(rnd["all_layers"]["layers"]) > 2


def test_localisation_calibration_and_video(dataset: dict, run: tuple) -> None:
    metrics, _ = run
    y, p = dataset["y"], dataset["probs"]
    fakes = y == 1
    masks = dataset["masks"][fakes]
    levels = np.rint(masks * 255).astype(np.int64)
    mask_prior, edge_prior = levels.sum(0) / (255.0 * 8), (4 * levels * (255 - levels)).sum(0) / (255.0**2 * 8)
    loc = metrics["localization"]
    assert loc["count"] == 8 and loc["baseline"].startswith("optimistic")
    for name in ("attention", "gradcampp"):
        maps = np.stack([getattr(q, name) for q, f in zip(dataset["preds"], fakes) if f]).astype(np.float64)
        for target, gt, prior in (("mask", masks, mask_prior), ("boundary", boundary_map(masks).astype(np.float64), edge_prior)):
            assert prior == pytest.approx(prior_map(gt), abs=1e-6)  # metrics.prior_map, summed exactly (ties in pixel AUC)
            expected = localization_report(maps, gt, prior=prior)
            for metric, entry in expected.items():
                for key in ("map", "baseline"):
                    got, want = loc[name][target][metric][key], entry[key]
                    assert got["count"] == want["count"] and got["undefined"] == want["undefined"]
                    assert (got["mean"] is None) == (want["mean"] is None)
                    if want["mean"] is not None:
                        assert got["mean"] == pytest.approx(want["mean"], abs=1e-5), (name, target, metric, key)
    logits = np.array([q.logits for q in dataset["preds"]])
    fitted = metrics["calibration"]["fitted"]
    assert fitted["temperature"] == pytest.approx(fit_temperature(logits, y).temperature, abs=1e-4)
    assert 0.5 <= fitted["temperature"] <= 5.0 and any("both the evaluation and the calibration" in n for n in metrics["notes"])
    assert metrics["calibration"]["checkpoint"]["brier"] == pytest.approx(np.mean((p - y) ** 2))
    video = metrics["video"]
    assert video["frames"] == 16 and video["videos"] == 8 and video["frame_auc"] == pytest.approx(roc_auc_score(y, p))
    # video "<label><k // 4>" holds crops k and k + 2: one track, so its score is their mean
    starts = [k for k in range(16) if k % 4 < 2]
    vy, vp = y[starts], (p[starts] + p[[k + 2 for k in starts]]) / 2
    for method in ("track-mean-then-max", "frame-max-then-mean"):
        entry = video["methods"][method]
        assert entry["n_real"] == entry["n_fake"] == 4 and entry["auc"] == pytest.approx(roc_auc_score(vy, vp))


def test_errors_and_robustness(dataset: dict, run: tuple) -> None:
    metrics, _ = run
    # the calibration rows are the same rows: broken.png is reported once per split, then left out
    assert [(Path(e["path"]).name, e["column"], e["split"]) for e in metrics["errors"]] == [("broken.png", "path", "evaluation"), ("broken.png", "path", "calibration")]
    assert "not a recognised image format" in metrics["errors"][0]["message"]
    rob = metrics["robustness"]
    assert set(rob["levels"]) == {perturbation_name(k, lv) for k, levels in PERTURBATIONS.items() for lv in levels}
    assert rob["clean"]["auc"] == pytest.approx(metrics["classification"]["auc_roc"])
    # noise is seeded per (seed, index): index = the row's position in the manifest (broken.png is row 5)
    indices = [k if k < 5 else k + 1 for k in range(16)]
    noisy = [apply_perturbation(c, "noise", 10.0, seed=0, index=i) for c, i in zip(dataset["crops"], indices)]
    probs = np.array([q.prob_fake for q in dataset["detector"].predict(noisy, cam=False)])
    assert rob["levels"]["noise-10"]["auc"] == pytest.approx(roc_auc_score(dataset["y"], probs))
    assert rob["levels"]["jpeg-50"]["kind"] == "jpeg" and rob["levels"]["jpeg-50"]["level"] == 50.0


def test_report_is_self_contained(run: tuple) -> None:
    _, result = run
    page = result.report_path.read_text()
    sources = re.findall(r"src=['\"]([^'\"]*)", page)
    assert len(sources) >= 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href=" not in page.replace("href='#", "")
    for section in ("ROC curve", "confusion matrix", "reliability diagram", "Localisation", "optimistic baseline", "Faithfulness",
                    "Average Drop", "deletion", "Robustness", "Video level", "Most and least confident", "attention gate", "Grad-CAM++", "broken.png"):
        assert section in page, section
    assert "UNTRAINED" not in page


def test_one_class_untrained_prior_and_no_robustness(dataset: dict, tmp_path: Path) -> None:
    untrained = make_checkpoint(tmp_path / "untrained", size=SIZE, trained=False)
    fakes = [r for r in dataset["rows"] if r.is_fake and r.mask]
    result = evaluate(fakes[:4], tmp_path / "out", model=untrained, prior_masks=fakes[4:], **FAST)
    m = result.metrics
    assert result.exit_code == 0 and m["errors"] == [] and m["counts"]["evaluated"] == 4
    assert m["classification"]["auc_roc"] is None and "needs reals and fakes" in m["classification"]["unavailable"]
    assert m["classification"]["operating_point"]["threshold"] is None and m["robustness"] is None
    assert isinstance(m["classification"]["recall"], float) and m["calibration"]["checkpoint"]["ece"] is not None
    assert m["localization"]["baseline"].startswith("prior") and m["localization"]["baseline_masks"] == len(fakes) - 4
    page = result.report_path.read_text()
    assert "UNTRAINED" in page and "needs reals and fakes" in page and "run with --robustness" in page


def test_input_errors(dataset: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EvaluateOptions(batch_size=0)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        EvaluateOptions(threshold=1.5)
    with pytest.raises(ValueError, match="split must be one of"):
        EvaluateOptions(split="holdout")
    with pytest.raises(TypeError, match="manifest path or a sequence of ManifestRow"):
        evaluate([1, 2], tmp_path, model=dataset["checkpoint"], **FAST)
    with pytest.raises(ValueError, match="has no rows in split 'test'"):
        evaluate(dataset["manifest"], tmp_path, model=dataset["checkpoint"], split="test", **FAST)
    broken = [r for r in dataset["rows"] if r.path.endswith("broken.png")]
    with pytest.raises(ValueError, match="none of the 1 images could be read"):
        evaluate(broken, tmp_path, model=dataset["checkpoint"], **FAST)
    reals = [r for r in dataset["rows"] if not r.is_fake]
    with pytest.raises(ValueError, match="prior_masks has no fake row with a readable mask"):
        evaluate(dataset["rows"][:4], tmp_path, model=dataset["checkpoint"], prior_masks=reals, **FAST)


def test_same_numbers_for_any_batch_size_and_bad_masks_reported(dataset: dict, tmp_path: Path) -> None:
    rows = [dataclasses.replace(r, split="test" if k < 6 else "val") for k, r in enumerate(dataset["rows"][:10])]
    bad_mask = dataset["root"] / "bad_mask.png"
    Image.fromarray(np.zeros((SIZE + 2, SIZE), dtype=np.uint8)).save(bad_mask)  # wrong size for its image
    rows[1] = dataclasses.replace(rows[1], mask=str(bad_mask))
    runs = [evaluate(rows, tmp_path / f"b{b}", model=dataset["detector"], split="test", calibration_split="val", **{**FAST, "batch_size": b}).metrics
            for b in (2, 5)]
    for m in runs:
        for key in ("started", "finished", "options"):
            m.pop(key)
    a, b = _leaves(runs[0]), _leaves(runs[1])
    assert a.keys() == b.keys()
    for key, value in a.items():  # batched convolutions differ in the last bits only
        assert b[key] == (pytest.approx(value, rel=1e-4, abs=1e-5) if isinstance(value, float) else value), key
    m = runs[0]
    assert m["counts"]["evaluated"] == 5 and m["counts"]["calibration"] == 4 and m["counts"]["fake_without_mask"] == 1
    assert [(Path(e["path"]).name, e["column"]) for e in m["errors"]] == [("bad_mask.png", "mask"), ("broken.png", "path")]
    assert "mask is 24x26 but its image is 24x24" in m["errors"][0]["message"]
    assert m["classification"]["operating_point"]["chosen_on"] == "calibration" and m["calibration"]["fitted"] is not None


def _leaves(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _leaves(value, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _leaves(value, f"{prefix}/{i}").items()}
    return {prefix: tree}


def test_helpers() -> None:
    assert equivalent_threshold(0.5, 1.0, 3.0) == 0.5 and equivalent_threshold(1.0, 1.0, 3.0) == 1.0
    # P = sigmoid(d / T): d = 2 at T = 1 is sigmoid(2); at T = 2 the same logits give sigmoid(1)
    assert equivalent_threshold(1 / (1 + np.exp(-2.0)), 1.0, 2.0) == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert jsonable({"a": np.float32(0.5), "b": [np.int64(3), float("nan")], "c": (np.inf, np.bool_(True))}) == {"a": 0.5, "b": [3, None], "c": [None, True]}
    levels = np.array([[[0, 255], [128, 255]], [[255, 255], [0, 64]]], dtype=np.uint8)
    mean = MaskMean()
    mean.add(levels[0])
    mean.add(levels[1:])
    mask, edge = mean.maps()
    soft = levels / 255.0
    assert mean.count == 2 and mask == pytest.approx(soft.mean(0)) and edge == pytest.approx((4 * soft * (1 - soft)).mean(0))


def test_text_summary(run: tuple) -> None:
    metrics, _ = run
    text = text_summary(metrics)
    assert "16 of 17 crops evaluated" in text and f"AUC {metrics['classification']['auc_roc']:.3f}" in text and "robustness: clean AUC" in text


def test_each_kind_of_fake_against_all_reals(dataset: dict, tmp_path: Path) -> None:
    """Fakes of two kinds, named by their ``fake/<kind>/`` folder and by a ``video_id`` prefix: each
    kind's AUC and TPR are those of its fakes against every real, computed here with scikit-learn."""
    rows, kinds = [], []
    for k, (crop, label) in enumerate(zip(dataset["crops"], dataset["y"])):
        if label == 0:
            folder, video_id, kind = tmp_path / "real", "", None
        elif k % 4 == 1:
            folder, video_id, kind = tmp_path / "fake" / "fingerprint", "", "fingerprint"
        else:
            folder, video_id, kind = tmp_path / "fake", f"Deepfakes/{k:03d}", "Deepfakes"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(folder / f"c{k:02d}.png")
        rows.append(ManifestRow(path=str(folder / f"c{k:02d}.png"), label="fake" if label else "real", video_id=video_id))
        kinds.append(kind)
    threshold = float(np.median(dataset["probs"]))
    metrics = evaluate(rows, tmp_path / "out", model=dataset["checkpoint"], threshold=threshold, **FAST).metrics
    section = metrics["fake_types"]
    assert list(section["types"]) == ["fingerprint", "Deepfakes"] and section["n_real"] == 8
    probs, y = dataset["probs"], dataset["y"]
    assert section["fpr"] == pytest.approx(float((probs[y == 0] >= threshold).mean()))
    for name, figures in section["types"].items():
        chosen = np.array([label == 0 or kind == name for label, kind in zip(y, kinds)])
        fakes = probs[np.array([kind == name for kind in kinds])]
        assert figures["n_fake"] == fakes.size == 4
        assert figures["auc"] == pytest.approx(roc_auc_score(y[chosen], probs[chosen]), abs=1e-9)
        assert figures["tpr"] == pytest.approx(float((fakes >= threshold).mean()))
        assert figures["auc_ci"]["low"] <= figures["auc"] <= figures["auc_ci"]["high"]
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Per kind of fake" in report and "fingerprint" in report
    assert "per kind of fake: fingerprint AUC" in text_summary(metrics)


def test_no_kind_section_when_fakes_have_no_kind(run: tuple) -> None:
    metrics, _ = run
    assert metrics["fake_types"] is None and "Per kind of fake" not in (run[1].report_path.read_text())


def test_affine_calibration_section_against_references() -> None:
    """``fit="affine"``: T and offset are :func:`fit_affine`'s, the after-figures those of its P(fake)
    (scikit-learn's Brier and log loss), and ``threshold_equivalent`` keeps every decision."""
    rng = np.random.default_rng(3)
    def logits(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        gap = 2.5 * y - 1.8 + rng.normal(0, 1.6, n)  # leans fake-ward and over-confident: an offset and T > 1 help
        return y, np.stack([np.zeros(n), gap], axis=1)
    (y_cal, z_cal), (y, z) = logits(400), logits(300)
    temperature, threshold = 1.3, 0.6
    section = calibration_section(y, z, temperature, threshold, (y_cal, z_cal), fit="affine")
    want = fit_affine(z_cal, y_cal, bounds=(0.5, 5.0))
    fitted = section["fitted"]
    assert fitted["kind"] == "affine" and fitted["temperature"] == pytest.approx(want.temperature) and fitted["offset"] == pytest.approx(want.offset)
    assert abs(fitted["offset"]) > 0.1
    p_after = apply_affine(z, want.temperature, want.offset)
    assert fitted["after"]["brier"] == pytest.approx(brier_score_loss(y, p_after))
    assert fitted["after"]["nll"] == pytest.approx(log_loss(y, p_after))
    assert fitted["after"]["ece"] == pytest.approx(expected_calibration_error(y, p_after))
    p_checkpoint = 1 / (1 + np.exp(-z[:, 1] / temperature))
    assert fitted["before"]["brier"] == pytest.approx(brier_score_loss(y, p_checkpoint)) and fitted["after"]["nll"] < fitted["before"]["nll"]
    assert np.array_equal(p_checkpoint >= threshold, p_after >= fitted["threshold_equivalent"])
    temperature_only = calibration_section(y, z, temperature, threshold, (y_cal, z_cal))["fitted"]
    assert temperature_only["kind"] == "temperature" and temperature_only["offset"] == 0.0
    assert temperature_only["temperature"] == pytest.approx(fit_temperature(z_cal, y_cal).temperature, abs=1e-4)
    with pytest.raises(ValueError, match="fit must be one of temperature, affine"):
        calibration_section(y, z, temperature, threshold, (y_cal, z_cal), fit="platt")
    with pytest.raises(ValueError, match="calibration_fit must be one of temperature, affine"):
        EvaluateOptions(calibration_fit="platt")


def test_evaluate_with_affine_calibration(dataset: dict, tmp_path: Path) -> None:
    rows = [dataclasses.replace(r, split="test" if k < 8 else "val") for k, r in enumerate(dataset["rows"])]
    result = evaluate(rows, tmp_path, model=dataset["detector"], split="test", calibration_split="val", calibration_fit="affine",
                      **{**FAST, "faithfulness_limit": 0, "bootstrap": 0})
    val = [k for k, r in enumerate(dataset["rows"]) if k >= 8 and not r.path.endswith("broken.png")]
    index = [k - (k > 5) for k in val]  # dataset["preds"] has no row for broken.png (row 5)
    want = fit_affine(np.array([dataset["preds"][i].logits for i in index]), dataset["y"][index], bounds=(0.5, 5.0))
    fitted = result.metrics["calibration"]["fitted"]
    assert fitted["kind"] == "affine" and fitted["offset"] == pytest.approx(want.offset, abs=1e-4)
    assert result.metrics["options"]["calibration_fit"] == "affine"
    assert f"offset {want.offset:+.3f}" in result.report_path.read_text() and f"offset {want.offset:+.3f}" in text_summary(result.metrics)
