"""Scaling over processes on this machine: training samples/s and analysis items/s with 1 and 2
processes (torch.multiprocessing spawn, gloo on 127.0.0.1), the ratio 2-process / 1-process, and the
share of time the model loop waits for data.

* Training: ``train`` (DistributedDataParallel with 2 ranks) on a tiny seed model (feature_dim 16)
  and generated patch images (``--size`` pixels, the same global batch for 1 and 2 processes);
  samples/s = steps x global batch / wall time of ``train`` on rank 0. Data is loaded in process
  (workers 0), so the wait share is the time spent in the dataset's ``__getitem__``.
* Analysis: ``analyze`` on ``--images`` generated JPEGs with a tiny checkpoint (whole image = face,
  Grad-CAM++ and a rendered panel per image), decoding in ``--workers`` DataLoader workers per rank;
  items/s = images / wall time of ``analyze`` on rank 0 (it merges last, and the time includes
  loading the model and starting the workers); the wait share is ``RunSummary.data_wait_fraction``
  (time the model loop waited for the DataLoader between the first and the last message, over all ranks).

Runs: one process with every core as intra-op threads (``torch.set_num_threads``), one process
with one thread, and two processes with ``cores // 2`` threads each (the table says which). On a
2-core machine the ratio therefore measures processes against threads on the same cores, not
added hardware; against the one-thread process it shows what a second core gives.

The runs of one task are variants of one interleaved measurement (``_timing``: a warm-up round,
then ``--repeats`` rotated rounds, each run in fresh processes and folders); figures are medians
[IQR] and the ratios are paired per round, with the verdict as the last line.

    python bench/scale.py [--steps 20] [--batch 16] [--size 32] [--images 48] [--workers 1] [--repeats 3] [--warmup-rounds 1] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from torch.utils.data import Dataset

from deepfake_attention import AttentionMapModel, CheckpointConfig, Preprocess, analyze, save_checkpoint
from deepfake_attention.train import load_config, train

from _common import print_table
from _timing import Stats, Verdict, add_arguments, legend, load_line, measure


class PatchImages(Dataset):
    """Generated training samples: smooth noise, fakes with a bright square; (seed, epoch, index) decide all."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size, self.epoch, self.load_s = n, size, 0, 0.0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        start = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence([0, self.epoch, index]))
        image = rng.normal(0.0, 0.3, size=(3, self.size, self.size)).astype(np.float32)
        mask = np.zeros((1, self.size, self.size), dtype=np.float32)
        label = index % 2
        if label:
            y, x = rng.integers(0, self.size // 2, size=2)
            mask[:, y : y + self.size // 3, x : x + self.size // 3] = 1.0
            image += 1.5 * mask
        sample = {"image": torch.from_numpy(image), "label": label, "mask": torch.from_numpy(mask), "has_mask": bool(label)}
        self.load_s += time.perf_counter() - start
        return sample


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world: int, threads: int, port: int, task: str, args: argparse.Namespace, folder: str, run: int) -> None:
    torch.set_num_threads(threads)
    mp.set_start_method("fork", force=True)  # DataLoader workers fork, as under torchrun (spawn's children would spawn them)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        dist.barrier()
    start = time.perf_counter()
    if task == "train":
        cfg = load_config(None, [
            "model.trunk=none", "model.feature_dim=16", f"data.batch_size={args.batch}", f"data.size={args.size}", "optim.epochs=1",
            f"optim.max_steps={args.steps}", "optim.warmup_steps=2", f"run.checkpoint_every={10 * args.steps}", f"run.log_every={10 * args.steps}",
            f"run.out='{folder}/train-{world}-{threads}-{run}'", "run.tensorboard=false", "run.device='cpu'",
        ])
        data = PatchImages(args.steps * args.batch, args.size)
        result = train(cfg, train_set=data, progress=False)
        seconds = time.perf_counter() - start
        info = {"items": result.step * args.batch, "seconds": seconds, "wait": data.load_s / seconds}
    else:
        summary = analyze([f"{folder}/images"], f"{folder}/analyze-{world}-{threads}-{run}", model=f"{folder}/ckpt", device="cpu", workers=args.workers,
                          batch_size=args.batch, progress=False)
        info = {"items": len(summary.rows), "seconds": time.perf_counter() - start, "wait": summary.data_wait_fraction}
    if world > 1:
        infos: list = [None] * world
        dist.all_gather_object(infos, info)
        dist.destroy_process_group()
        info = {"items": infos[0]["items"], "seconds": max(i["seconds"] for i in infos), "wait": sum(i["wait"] for i in infos) / world}
    if rank == 0:
        Path(folder, f"{task}-{world}-{threads}-{run}.json").write_text(json.dumps(info))


def make_inputs(folder: Path, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = AttentionMapModel(feature_dim=32)
    save_checkpoint(model, folder / "ckpt", CheckpointConfig(model=model.get_config(), preprocess=Preprocess(size=args.size, detector="none")))
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    for i in range(args.images):
        Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)).save(folder / "images" / f"img{i:03d}.jpg", quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--batch", type=int, default=16, help="global training batch; faces per forward pass in analysis")
    parser.add_argument("--size", type=int, default=32, help="model input side in pixels")
    parser.add_argument("--images", type=int, default=48, help="images analysed per run (640x480 JPEG)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per rank in analysis")
    add_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"torch {torch.__version__}; {cores} cores; gloo on 127.0.0.1; training: seed model feature_dim 16, {args.size}x{args.size}, "
          f"global batch {args.batch}, {args.steps} steps; analysis: {args.images} JPEG 640x480 -> {args.size}x{args.size}, Grad-CAM++ and panels, "
          f"{args.workers} DataLoader worker(s) per rank")
    print(legend(args.repeats, args.warmup_rounds) + "; a rate is items / the seconds rank 0 measured inside its run")
    configs = list(dict.fromkeys([(1, cores), (1, 1), (2, max(1, cores // 2))]))
    verdict = Verdict()
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        make_inputs(Path(tmp), args)
        runs = iter(range(1_000_000))
        for task, unit in (("train", "samples/s"), ("analyze", "items/s")):

            def launch(world: int, threads: int, task: str = task):
                def call() -> dict:
                    run = next(runs)  # every run writes to its own folders: a second train must not resume the first
                    mp.spawn(_rank, args=(world, threads, free_port(), task, args, tmp, run), nprocs=world, join=True)
                    return json.loads(Path(tmp, f"{task}-{world}-{threads}-{run}.json").read_text())
                return call

            t = measure({config: launch(*config) for config in configs}, repeats=args.repeats, warmup=args.warmup_rounds)
            rates = {config: Stats.of(info["items"] / info["seconds"] for info in t.results[config]) for config in configs}
            for world, threads in configs:
                infos = t.results[world, threads]
                ratio = ""
                if world > 1:
                    parts = []
                    for base in sorted({cores, 1}, reverse=True):
                        paired = Stats.of(a / b for a, b in zip(rates[world, threads].values, rates[1, base].values))
                        # against one single-threaded process the cores are the bound; against a multi-threaded one
                        # there is none (its threads may scale badly), only the spread is checked
                        bound = world * threads if base == 1 else None
                        verdict.ratio(f"{task}: {world} processes / 1 process with {base} thread(s)", paired, at_most=bound,
                                      why=f"{world} processes of {threads} thread(s) use at most {world * threads} core(s)")
                        parts.append(paired.show_ratio(2))
                    ratio = " / ".join(parts)
                rows.append([task, world, threads, infos[0]["items"], Stats.of(info["seconds"] for info in infos).show(2), f"{rates[world, threads].show(1)} {unit}",
                             ratio, Stats.of(info["wait"] for info in infos).show(3)])
    print_table(["task", "processes", "threads/process", "items", "seconds", "rate", f"ratio 2 procs / 1 proc ({cores} thr / 1 thr)", "data-wait share"], rows)
    return verdict.report(args.strict, load=load_line("after the run"))

if __name__ == "__main__":
    sys.exit(main())
