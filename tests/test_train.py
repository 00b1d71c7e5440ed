"""Training: losses by hand, the loop learns, checkpoints are atomic and resume is exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepfake_attention import load_checkpoint
from deepfake_attention.train import load_config, train
from deepfake_attention.train.config import LossSection
from deepfake_attention.train.losses import normalised_entropy, total_variation, training_losses
from deepfake_attention.train.sampler import epoch_permutation, step_indices

from .train_fixtures import PatchDataset, tiny_config


def test_losses_by_hand() -> None:
    uniform = torch.full((1, 1, 4, 4), 0.5)
    delta = torch.zeros(1, 1, 4, 4)
    delta[0, 0, 1, 2] = 1.0
    assert float(normalised_entropy(uniform)) == pytest.approx(1.0)
    assert float(normalised_entropy(delta)) == pytest.approx(0.0, abs=1e-6)
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert float(total_variation(ramp)) == pytest.approx(1.0)  # dx: all ones; dy: zeros
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    attention = torch.full((2, 1, 2, 2), 0.5)
    masks = torch.ones(2, 1, 4, 4)
    terms = training_losses(logits, attention, labels, masks, torch.tensor([True, True]), LossSection(mask=2.0))
    ce = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert float(terms["ce"]) == pytest.approx(ce, rel=1e-6)
    # BCE(0.5, 1) = log 2 for the one fake, divided by the batch of 2; the real counts nothing
    assert float(terms["mask"]) == pytest.approx(math.log(2.0) / 2, rel=1e-5)
    assert float(terms["total"]) == pytest.approx(ce + 2 * math.log(2.0) / 2, rel=1e-5)
    reals_only = training_losses(logits, attention, torch.tensor([0, 0]), masks, torch.tensor([True, True]), LossSection(mask=2.0))
    assert float(reals_only["mask"]) == 0.0


def test_sampler_is_a_pure_function_and_shards_evenly() -> None:
    assert torch.equal(epoch_permutation(10, 1, 2), epoch_permutation(10, 1, 2))
    assert not torch.equal(epoch_permutation(10, 1, 2), epoch_permutation(10, 1, 3))
    whole = step_indices(20, 8, 0, 1, 1)
    halves = step_indices(20, 8, 0, 1, 1, rank=0, world_size=2) + step_indices(20, 8, 0, 1, 1, rank=1, world_size=2)
    assert whole == halves and len(whole) == 8
    with pytest.raises(ValueError, match="does not split over 3 ranks"):
        step_indices(20, 8, 0, 0, 0, rank=0, world_size=3)


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nlr = 0.01\nepochs = 2\n[model]\ntrunk = 'mobilenet_v2_s8'\n")
    cfg = load_config(path, ["optim.lr=0.5", "data.train=['a.csv', 'b.csv']", "model.imagenet_weights=none"])
    assert cfg.optim.lr == 0.5 and cfg.optim.epochs == 2 and cfg.data.train == ["a.csv", "b.csv"] and cfg.model.imagenet_weights is None
    with pytest.raises(ValueError, match=r"unknown keys \['lrr'\] in \[optim\]"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="optim.amp must be one of"):
        load_config(None, ["optim.amp='fp8'"])
    with pytest.raises(ValueError, match="must look like section.key=value"):
        load_config(None, ["lr"])
    with pytest.raises(ValueError, match="fingerprint_latent_share must be in"):
        load_config(None, ["synth.fingerprint_latent_share=0.5"])  # no latent autoencoder to draw
    shared = load_config(None, ["synth.fingerprint_prob=0.5", "synth.fingerprint_decoders='d'", "synth.fingerprint_latent=['e.pth', 'd.pth']",
                                "synth.fingerprint_latent_share=0.5"])
    assert shared.synth.fingerprint_latent_share == 0.5


def test_training_learns_and_writes_checkpoints(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", **{"optim.epochs": 6, "run.patience": 10})
    result = train(cfg, train_set=PatchDataset(64), val_set=PatchDataset(32, seed=1), progress=False)
    rows = [r for r in _read_log(tmp_path / "run" / "log.csv") if r["loss"]]
    first, last = np.mean([float(r["loss"]) for r in rows[:3]]), np.mean([float(r["loss"]) for r in rows[-3:]])
    assert last < 0.7 * first
    assert result.history[-1]["val_auc"] > 0.9
    model, config = load_checkpoint(result.model_dir)
    assert config.trained and config.info["val"]["val_auc"] > 0.9 and config.preprocess.size == 24
    folder = tmp_path / "run" / "checkpoints"
    steps = sorted(p.name for p in folder.glob("step-*"))
    assert len(steps) == 2 and (folder / "latest").read_text().strip() == steps[-1]
    for name in ("model.safetensors", "optimizer.safetensors", "trainer_state.json", "train_config.json", "config.json"):
        assert (folder / steps[-1] / name).is_file()
    assert json.loads((folder / steps[-1] / "trainer_state.json").read_text())["step"] == result.step
    assert not list(folder.glob(".*tmp*"))


@pytest.mark.parametrize("select_on", ["val_loss", "val_auc"])
def test_the_release_keeps_the_best_validation_by_the_chosen_metric(tmp_path: Path, select_on: str) -> None:
    cfg = tiny_config(tmp_path / "run", **{"optim.epochs": 5, "run.patience": 10, "run.select_on": f"'{select_on}'"})
    result = train(cfg, train_set=PatchDataset(48), val_set=PatchDataset(24, seed=1), progress=False)
    history = result.history
    best = min(history, key=lambda m: m["val_loss"]) if select_on == "val_loss" else max(history, key=lambda m: m["val_auc"])
    _, config = load_checkpoint(result.model_dir)
    assert config.info["val"]["step"] == best["step"] and config.info["val"][select_on] == best[select_on]
    with pytest.raises(ValueError, match="run.select_on"):
        tiny_config(tmp_path / "x", **{"run.select_on": "'accuracy'"})


def test_resume_after_a_pause_gives_the_same_weights(tmp_path: Path) -> None:
    data, val = PatchDataset(40), PatchDataset(16, seed=1)
    straight = train(tiny_config(tmp_path / "a"), train_set=data, val_set=val, progress=False)
    paused = train(tiny_config(tmp_path / "b", **{"run.stop_at_step": 7}), train_set=data, val_set=val, progress=False)
    assert paused.paused and paused.step == 7 and straight.step == 15
    resumed = train(tiny_config(tmp_path / "b"), train_set=data, val_set=val, resume=True, progress=False)
    assert resumed.step == straight.step
    a = load_file(str(tmp_path / "a" / "checkpoints" / f"step-{straight.step:07d}" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / f"step-{resumed.step:07d}" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_resume_logs_each_step_once(tmp_path: Path) -> None:
    """A run killed after logging steps past its last checkpoint redoes them: the log keeps one row per step."""
    data, val = PatchDataset(40), PatchDataset(16, seed=1)
    train(tiny_config(tmp_path / "a"), train_set=data, val_set=val, progress=False)
    train(tiny_config(tmp_path / "b", **{"run.stop_at_step": 7}), train_set=data, val_set=val, progress=False)
    log = tmp_path / "b" / "log.csv"
    with open(log, "a", encoding="utf-8") as handle:  # logged by the killed process, never checkpointed
        handle.write("8,1,0.001,9.9,9.9,,,,,,,,,1.0\n9,1,0.001,9.9,9.9,,,,,,,,,1.0\n")
    train(tiny_config(tmp_path / "b"), train_set=data, val_set=val, resume=True, progress=False)
    straight, resumed = _read_log(tmp_path / "a" / "log.csv"), _read_log(log)
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]


def _read_log(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_paired_weighted_sampling_keeps_pairs_and_follows_the_weights() -> None:
    from deepfake_attention.data.datasets import Sampling

    plain = epoch_permutation(12, 0, 0)
    assert torch.equal(epoch_permutation(12, 0, 0, Sampling()), plain)  # no wish: the old shuffle
    paired = epoch_permutation(12, 0, 0, Sampling(pairs=True))
    assert sorted(paired.tolist()) == list(range(12))
    assert all(a % 2 == 0 and b == a + 1 for a, b in zip(paired[0::2].tolist(), paired[1::2].tolist()))
    # weights: unit 0 (items 0, 1) weighs 9x each of the others; draws follow, with replacement
    weighted = Sampling(pairs=True, weights=(9.0, 1.0, 1.0, 1.0))
    draws = torch.cat([epoch_permutation(8, 0, e, weighted) for e in range(300)])
    share = (draws == 0).float().mean().item() * 2  # item 0 appears once per pair drawn
    assert abs(share - 0.75) < 0.05
    assert torch.equal(epoch_permutation(8, 0, 5, weighted), epoch_permutation(8, 0, 5, weighted))
    batch = step_indices(8, 4, 0, 1, 1, sampling=weighted)
    assert len(batch) == 4 and batch[1] == batch[0] + 1 and batch[3] == batch[2] + 1
    with pytest.raises(ValueError, match="divisible by 2"):
        step_indices(8, 3, 0, 0, 0, sampling=weighted)
    with pytest.raises(ValueError, match="3 weights for 4 units"):
        epoch_permutation(8, 0, 0, Sampling(pairs=True, weights=(1.0, 1.0, 1.0)))
    with pytest.raises(ValueError, match="even number"):
        epoch_permutation(7, 0, 0, Sampling(pairs=True))


def test_person_weights_count_people_not_files() -> None:
    from deepfake_attention.data.face_records import FaceRecord, person_weights

    faces = [FaceRecord("a.png", (0, 0, 4, 4), person="obama"), FaceRecord("b.png", (0, 0, 4, 4), person="obama"),
             FaceRecord("c.png", (0, 0, 4, 4), source_id="clip"), FaceRecord("d.png", (0, 0, 4, 4), source_id="clip"),
             FaceRecord("e.png", (0, 0, 4, 4), source_id="clip"), FaceRecord("f.png", (0, 0, 4, 4))]
    assert person_weights(faces) == pytest.approx([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3, 1.0])


def test_blended_dataset_asks_for_pairs_and_person_weights() -> None:
    from deepfake_attention.data.datasets import Sampling
    from deepfake_attention.data.face_records import FaceRecord
    from deepfake_attention.data.synth_dataset import BlendedFaceDataset

    faces = [FaceRecord(f"{k}.png", (0, 0, 4, 4)) for k in range(3)]
    assert BlendedFaceDataset(faces, size=16).sampling is None
    assert BlendedFaceDataset(faces, size=16, paired=True, weights=[1, 2, 3]).sampling == Sampling(pairs=True, weights=(1.0, 2.0, 3.0))
    assert BlendedFaceDataset(faces, size=16, weights=[1, 2, 3]).sampling == Sampling(weights=(1.0, 1.0, 2.0, 2.0, 3.0, 3.0))
    with pytest.raises(ValueError, match="2 weights for 3 faces"):
        BlendedFaceDataset(faces, size=16, weights=[1, 2])
