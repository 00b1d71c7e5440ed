"""The weight average (optim.ema_decay) and fine-tuning from a release checkpoint (model.init_from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepfake_attention import load_checkpoint
from deepfake_attention.train import train
from deepfake_attention.train.ema import EMA_FILE, WeightAverage

from .train_fixtures import PatchDataset, tiny_config


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_the_average_follows_the_recurrence_by_hand() -> None:
    """Each update is a <- d a + (1 - d) w with d = min(decay, (1 + step) / (10 + step)); the batch count is copied."""
    net = _net()
    average = WeightAverage(net, decay=0.9)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for step in range(1, 31):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)
            net[1].num_batches_tracked.add_(1)
        average.update(net, step)
        d = min(0.9, (1 + step) / (10 + step))
        for key, value in net.state_dict().items():
            expected[key] = d * expected[key] + (1 - d) * value if value.is_floating_point() else value.clone()
    assert average.decay_at(1) == pytest.approx(2 / 11) and average.decay_at(1000) == 0.9
    for key, value in average.module.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-5, msg=key)
    assert int(average.module[1].num_batches_tracked) == 30
    assert not any(p.requires_grad for p in average.module.parameters()) and not average.module.training


def test_the_average_saves_and_loads_exactly(tmp_path: Path) -> None:
    net = _net()
    average = WeightAverage(net, decay=0.99)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    average.update(net, 50)
    average.save(tmp_path)
    other = WeightAverage(_net(), decay=0.99)
    other.load(tmp_path)
    for (key, a), b in zip(average.module.state_dict().items(), other.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    with pytest.raises(FileNotFoundError, match="ema_decay"):
        other.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def test_training_releases_the_average_and_resumes_it_exactly(tmp_path: Path) -> None:
    data, val = PatchDataset(40), PatchDataset(16, seed=1)
    straight = train(tiny_config(tmp_path / "a", **{"optim.ema_decay": 0.8}), train_set=data, val_set=None, progress=False)
    folder = tmp_path / "a" / "checkpoints" / f"step-{straight.step:07d}"
    released, _ = load_checkpoint(straight.model_dir)
    trained = load_file(str(folder / "model.safetensors"))
    averaged = load_file(str(folder / EMA_FILE))
    for key, value in released.state_dict().items():  # the release is the average, not the last weights
        torch.testing.assert_close(value, averaged[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained if trained[k].is_floating_point())

    train(tiny_config(tmp_path / "b", **{"optim.ema_decay": 0.8, "run.stop_at_step": 7}), train_set=data, val_set=val, progress=False)
    resumed = train(tiny_config(tmp_path / "b", **{"optim.ema_decay": 0.8}), train_set=data, val_set=val, resume=True, progress=False)
    again = train(tiny_config(tmp_path / "c", **{"optim.ema_decay": 0.8}), train_set=data, val_set=val, progress=False)
    a = load_file(str(tmp_path / "b" / "checkpoints" / f"step-{resumed.step:07d}" / EMA_FILE))
    b = load_file(str(tmp_path / "c" / "checkpoints" / f"step-{again.step:07d}" / EMA_FILE))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    with pytest.raises(ValueError, match="optim.ema_decay"):
        tiny_config(tmp_path / "x", **{"optim.ema_decay": 1.5})


def test_validation_scores_and_keeps_the_average(tmp_path: Path) -> None:
    """The best weights kept by validation are the average at the best step, and its val loss is the one recorded."""
    from deepfake_attention.train.validation import evaluate_loss_auc

    val = PatchDataset(16, seed=1)
    cfg = tiny_config(tmp_path / "run", **{"optim.ema_decay": 0.9, "optim.epochs": 4, "run.eval_every": 4, "run.patience": 10, "run.keep_checkpoints": 100})
    result = train(cfg, train_set=PatchDataset(40), val_set=val, progress=False)
    model, config = load_checkpoint(result.model_dir)
    best = config.info["val"]["step"]
    averaged = load_file(str(tmp_path / "run" / "checkpoints" / f"step-{best:07d}" / EMA_FILE))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, averaged[key], rtol=0, atol=0, msg=key)
    again = evaluate_loss_auc(model, val, 8, torch.device("cpu"))
    assert again["val_loss"] == pytest.approx(config.info["val"]["val_loss"], rel=1e-5)


def test_fine_tuning_starts_from_the_given_checkpoint(tmp_path: Path) -> None:
    data = PatchDataset(40)
    first = train(tiny_config(tmp_path / "first"), train_set=data, val_set=None, progress=False)
    start, _ = load_checkpoint(first.model_dir)
    paused = train(tiny_config(tmp_path / "tuned", **{"model.init_from": f"'{first.model_dir}'", "optim.lr": 1e-9, "run.stop_at_step": 1}),
                   train_set=data, val_set=None, progress=False)
    tuned, _ = load_checkpoint(paused.model_dir)
    for (key, a), b in zip(start.state_dict().items(), tuned.state_dict().values()):
        if a.is_floating_point() and "running" not in key:  # one step at lr 1e-9 leaves the weights where they started
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)
    with pytest.raises(ValueError, match="model.init_from"):
        train(tiny_config(tmp_path / "wide", **{"model.init_from": f"'{first.model_dir}'", "model.feature_dim": 32}), train_set=data, progress=False)
