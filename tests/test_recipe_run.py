"""The default model's recipe end to end on a tiny corpus: split, faces, held-out sets, training,
calibration at the unit level, evaluation, unit reports next to a previous model, model card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from deepfake_attention.checkpoint import read_config
from deepfake_attention.detector import Detector
from deepfake_attention.metrics import fit_affine
from deepfake_attention.recipe.corpus import SPLITS
from deepfake_attention.recipe.model_card import MODEL_VERSION, model_card
from deepfake_attention.recipe.run import _faces, run
from deepfake_attention.recipe.units import score_units, unit_rows, unit_threshold

from .conftest import load_bench, make_checkpoint

TINY = [
    "model.trunk=none", "model.imagenet_weights=none", "model.fetch_imagenet='none'", "model.feature_dim=16", "data.size=32",
    "data.workers=0", "data.batch_size=4", "data.detector='haar'", "optim.max_steps=3", "optim.warmup_steps=1", "run.eval_every=2",
    "run.checkpoint_every=2", "run.tensorboard=false",
]


def _corpus(root: Path) -> Path:
    """Fourteen photos of "fourteen people" (the astronaut's face recoloured, flipped and placed on backgrounds), one group photo."""
    face = data.astronaut()[20:220, 130:320]
    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    for k in range(14):
        canvas = rng.integers(40, 200, size=(300, 300, 3), dtype=np.uint8)
        tinted = np.clip(face.astype(int) + rng.integers(-30, 30, size=3), 0, 255).astype(np.uint8)
        canvas[40:240, 50:240] = tinted[:, ::-1] if k % 2 else tinted
        Image.fromarray(canvas).save(root / "images" / f"p{k}.jpg", quality=92)
        rows.append({"file": f"images/p{k}.jpg", "kind": "image", "group": "photo" if k < 9 else "low_res", "people": "1", "identities": f"person-{k}"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "kind", "group", "people", "identities"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.mark.slow
def test_recipe_runs_in_slices_end_to_end_and_writes_its_card(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _corpus(shared / "real-faces")
    previous = make_checkpoint(tmp_path / "previous", detector="haar", size=32)
    averaged = [*TINY, "optim.ema_decay=0.9"]  # and the weights' moving average, resumed with them
    paused = run(shared, tmp_path / "run", landmarks=False, overrides=[*averaged, "run.stop_at_step=2"], previous=previous, robustness=False)
    assert paused["paused"] and paused["steps"] == 2 and "units" not in paused  # a slice: neither calibrated nor evaluated
    assert not (tmp_path / "run" / "eval-test_sbi").exists()
    summary = run(shared, tmp_path / "run", landmarks=False, overrides=averaged, previous=previous, robustness=False, resume=True)
    assert summary["resumed"] and "paused" not in summary
    prepared = summary["prepared"]
    assert prepared["split_seed"] == 20261201 and set(prepared["split"]) == set(SPLITS)
    people = {s: sum(g["identities"] for g in prepared["split"][s].values()) for s in SPLITS}
    assert sum(people.values()) == 15 and min(people.values()) >= 2  # 14 corpus people + the astronaut
    assert summary["steps"] == 3
    config = read_config(summary["model_dir"])
    assert config.threshold == pytest.approx(summary["unit_threshold"]) and config.info["unit_threshold"]["target_fpr"] == 0.05
    assert config.preprocess.detector == "haar" and config.preprocess.crop_border == "constant"
    # calibrated on the calibration people's units, the offset folded into the weights: refitting the
    # folded checkpoint's scores finds no offset and the same T, and its units give the same threshold
    fit = config.info["calibration"]
    assert fit["fit"] == "affine" and fit["unit"] == "person per file" and fit["samples"] == 2 * people["calibration"]
    detector, faces = Detector.load(summary["model_dir"]), _faces(tmp_path / "run" / "data")
    logits, labels, keys, _ = unit_rows(detector, prepared["paths"]["calibration"], faces)
    refit = fit_affine(logits, labels, groups=keys)
    assert refit.offset == pytest.approx(0.0, abs=1e-3) and refit.temperature == pytest.approx(config.temperature, rel=1e-3)
    assert unit_threshold(score_units(detector, prepared["paths"]["calibration"], faces), 0.05) == pytest.approx(config.threshold, abs=1e-6)
    units = summary["units"]
    test_people = people["test"]
    assert units["model"]["test_sbi"]["overall"]["reals"] == test_people == units["model"]["test_sbi"]["overall"]["fakes"]
    assert units["previous"]["test_sbi"]["overall"]["reals"] == test_people and "model_sha256" in units["previous"]
    for name in ("test_sbi", "test_other"):
        assert json.loads(Path(summary["evaluations"][name]).read_text())["classification"]["n_real"] >= 1
    card = model_card(tmp_path / "run")
    assert "research use only" in card and "No generated, face-swapped or reenacted image" in card
    assert f"seed {prepared['split_seed']}" in card and "| overall |" in card and "previous" in card
    assert card.startswith(f"# deepfake-attention default model ({MODEL_VERSION})") and "the face crop itself (no trunk)" in card
    assert f"Affine scaling on the {fit['samples']} units of the calibration people" in card
    assert "moving average of the trained ones (decay 0.9 per step, about the last 10 steps)" in card


@pytest.mark.slow
def test_recipe_calibrates_given_weights_with_flip_averaging_without_training(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _corpus(shared / "real-faces")
    trained = run(shared, tmp_path / "trained", landmarks=False, overrides=TINY, previous=None, robustness=False, flip_average=False)
    assert not read_config(trained["model_dir"]).preprocess.flip_average and trained["flip_average"] is False
    summary = run(shared, tmp_path / "flip", landmarks=False, overrides=TINY, previous=Path(trained["model_dir"]), robustness=False,
                  weights=Path(trained["model_dir"]), calibration="crops")  # a temperature on crops: the weights stay as they were
    assert not (tmp_path / "flip" / "train" / "checkpoints").exists()  # nothing was trained
    config = read_config(summary["model_dir"])
    assert config.preprocess.flip_average and summary["flip_average"] is True
    assert config.weights_sha256 == summary["weights_from"]["sha256"] == read_config(trained["model_dir"]).weights_sha256
    assert summary["train_config"] == trained["train_config"] and summary["minutes"]["train"] is None
    assert summary["units"]["previous"]["flip_average"] is False  # the same weights, scored once per crop, side by side
    assert config.threshold == pytest.approx(summary["unit_threshold"])
    card = model_card(tmp_path / "flip")
    assert "trained nothing" in card and summary["weights_from"]["sha256"][:8] in card and "horizontal mirror" in card
    assert "each crop scored once" in card and f"on {summary['calibration']['samples']} crops" in card and "moving average" not in card
    # a fine-tune of the trained weights: the summary and the card name the weights it started from
    tuned = run(shared, tmp_path / "tuned", landmarks=False, overrides=[*TINY, f"model.init_from='{trained['model_dir']}'"], previous=None,
                robustness=False, flip_average=False)
    start = read_config(trained["model_dir"])
    start_sha = start.weights_sha256
    assert tuned["init_from"] == {"path": trained["model_dir"], "sha256": start_sha, "step": start.info["step"]} and start.info["step"] in (2, 3)
    assert f"fine-tuning the weights sha256 `{start_sha[:8]}...`" in model_card(tmp_path / "tuned")
    assert "init_from" not in trained and "fine-tuning" not in model_card(tmp_path / "trained")
    # bench/compare_models.py on this run's units: the figures are the recipe's, and a model against itself differs by nothing
    compare = load_bench("compare_models")
    out = tmp_path / "compare.json"
    sys_argv = ["compare_models.py", "--prepared", str(tmp_path / "flip" / "data"), "--model", summary["model_dir"], "--base", trained["model_dir"],
                "--bootstrap", "50", "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", sys_argv)
        assert compare.main() == 0
        figures = json.loads(out.read_text())
        assert figures["reports"]["candidate"]["test_sbi"] == summary["units"]["model"]["test_sbi"]
        assert figures["reports"]["base"]["test_other"] == summary["units"]["previous"]["test_other"]
        patch.setattr("sys.argv", [*sys_argv[:6], summary["model_dir"], *sys_argv[7:]])  # --base: the candidate itself
        assert compare.main() == 0
        assert all(d == [0.0, 0.0, 0.0] for name in ("test_sbi", "test_other") for d in json.loads(out.read_text())["differences"][name].values())
    with pytest.raises(ValueError, match="untrained checkpoint"):
        run(shared, tmp_path / "bad", landmarks=False, overrides=TINY, previous=None, robustness=False,
            weights=make_checkpoint(tmp_path / "untrained", trained=False, detector="haar"))
