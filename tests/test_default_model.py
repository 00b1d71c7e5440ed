"""The shipped default model: loads strictly, was trained by the recipe's config as it stands (so the
config file describes the shipped weights), is calibrated on held-out people, and is right at its
own threshold on every input `make demo` shows: the demo photo (a person it never trained on: the
recipe never reads it) real, its self-blends scored above it and fake (the subtler blend is a strict
xfail while issue 15 is open). When the real-face corpus is
beside the checkout, held-out people of the recipe's test split (recomputed here from the corpus
and the recorded split seed) are scored real but for the few its 5% false-positive target allows.
Its numbers are not pinned (it may be retrained)."""

from __future__ import annotations

from collections import defaultdict
from importlib import resources
from pathlib import Path

import pytest

from deepfake_attention import Detector, analyze
from deepfake_attention.demo import run_demo
from deepfake_attention.recipe.corpus import read_corpus, split_by_identity
from deepfake_attention.recipe.faces import extra_files
from deepfake_attention.recipe.run import CONFIG, SPLIT_SEED, TARGET_FPR
from deepfake_attention.train.config import load_config

from .conftest import SHARED_DATA

CORPUS = SHARED_DATA / "real-faces"
PER_GROUP = 4
"""Held-out one-person photos taken from each source group of the corpus (the first in file order)."""


def test_shipped_model_is_trained_and_calibrated() -> None:
    detector = Detector.load(device="cpu")
    config = detector.config
    assert config.trained and config.model["trunk"] == "mobilenet_v2_s16"
    assert 0.5 <= config.temperature <= 5.0 and 0.0 < config.threshold < 1.0
    pre = config.preprocess
    assert pre.detector == "mtcnn" and pre.crop_scale == 1.3 and pre.crop_border == "constant"
    assert config.info["unit_threshold"]["target_fpr"] == TARGET_FPR and config.info["unit_threshold"]["set"] == "calibration people"


def test_recipe_config_describes_the_shipped_weights() -> None:
    """Every setting of ``configs/default_model.toml`` is the one the shipped weights were trained with,
    except the paths the recipe fills in (its prepared folders and run folder). A setting added after
    the weights were trained is absent from their config: it must then be at its default (which keeps the old behaviour)."""
    shipped = Detector.load(device="cpu").config.info["train_config"]
    recipe = load_config(Path(str(resources.files("deepfake_attention.configs") / CONFIG))).to_dict()
    defaults = load_config(None).to_dict()
    filled_in = {("data", "real_faces"), ("data", "val"), ("run", "out")}
    differences = {(section, key): (shipped[section].get(key, "absent"), value) for section, values in recipe.items() for key, value in values.items()
                   if (section, key) not in filled_in and shipped[section].get(key, defaults[section][key]) != value}
    assert differences == {}, differences


@pytest.fixture(scope="module")
def demo_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, float, int]]:
    """File name -> (label, P(fake), faces) of exactly what `make demo` runs."""
    summary = run_demo(tmp_path_factory.mktemp("demo"), device="cpu")
    verdicts = {Path(row.path).name: (row.label, row.prob_fake, row.faces) for row in summary.rows}
    assert sorted(verdicts) == ["fake_grace_hopper_sbi0.png", "fake_grace_hopper_sbi1.png", "real_grace_hopper.jpg"]
    assert all(faces == 1 for _, _, faces in verdicts.values()), verdicts
    return verdicts


def test_demo_photo_of_an_unseen_person_is_called_real(demo_verdicts: dict) -> None:
    assert demo_verdicts["real_grace_hopper.jpg"][0] == "real", demo_verdicts


def test_demo_strong_blend_is_called_fake(demo_verdicts: dict) -> None:
    assert demo_verdicts["fake_grace_hopper_sbi1.png"][0] == "fake", demo_verdicts


@pytest.mark.xfail(strict=True, reason="issue 15 is open: the shipped v4.2 model ranks the subtler demo blend above the real photo but under its threshold")
def test_demo_subtle_blend_is_called_fake(demo_verdicts: dict) -> None:
    assert demo_verdicts["fake_grace_hopper_sbi0.png"][0] == "fake", demo_verdicts


def test_demo_blends_score_above_the_real_photo(demo_verdicts: dict) -> None:
    real = demo_verdicts["real_grace_hopper.jpg"][1]
    assert all(demo_verdicts[name][1] > real for name in ("fake_grace_hopper_sbi0.png", "fake_grace_hopper_sbi1.png")), demo_verdicts


def heldout_photos(per_group: int, work: Path) -> list[Path]:
    """The first ``per_group`` one-person photos of each source group among the recipe's test people
    (the split made as the recipe makes it: the corpus, then its extra files, which it writes to ``work``)."""
    files = read_corpus(CORPUS)
    splits = split_by_identity(files + extra_files(SHARED_DATA, work), seed=SPLIT_SEED)[: len(files)]
    chosen: dict[str, list[Path]] = defaultdict(list)
    for item, split in sorted(zip(files, splits), key=lambda pair: pair[0].file):
        if split == "test" and item.kind == "image" and item.people == 1 and len(chosen[item.group]) < per_group:
            chosen[item.group].append(CORPUS / item.file)
    return [path for group in sorted(chosen) for path in chosen[group]]


@pytest.mark.skipif(not (CORPUS / "manifest.csv").is_file(), reason="the shared real-face corpus is not beside this checkout")
def test_heldout_real_people_are_scored_real(tmp_path: Path) -> None:
    photos = heldout_photos(PER_GROUP, tmp_path / "extras")
    assert len(photos) >= 3 * PER_GROUP
    summary = analyze(photos, tmp_path / "out", device="cpu", save_maps="none", cam=False)
    assert [row.status for row in summary.rows] == ["ok"] * len(photos)
    flagged = [(row.path, round(row.prob_fake, 3)) for row in summary.rows if row.label == "fake"]
    assert len(flagged) <= max(1, round(TARGET_FPR * len(photos))), flagged
