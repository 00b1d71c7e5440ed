"""One prepared run of the GPU path (about 2-5 minutes on an H100/H200; exits 0 with a message where
CUDA is unavailable): training steps/s and analysis images/s on the trunk model with AMP off, bf16
and fp16 (channels_last, and one contiguous-layout row for comparison), optionally ``torch.compile``;
Grad-CAM++ and attention maps on CUDA against the CPU ones (max abs difference, with TF32 on and
off, and under bf16); then ``analyze`` end to end on generated images with DataLoader workers.

    python bench/gpu_check.py [--batch 64] [--steps 20] [--compile] [--model DIR] [--images 256] [--workers 4] [--repeats 5] [--strict]

Timings go through ``_timing``: all training settings are interleaved in one measurement, then all
analysis settings in another (a warm-up round, then ``--repeats`` rotated rounds of
``steps / repeats`` steps each, synchronised); figures are medians [IQR] and the verdict line
follows the checks (``--strict``: also exit 1 when it is UNRELIABLE).

Pass criteria (exit code 1 when one fails): fp32 CUDA maps with TF32 off within 1e-3 of the CPU
maps (float32 summation order only); with TF32 on and under bf16 within 0.1 (the maps are min-max
normalised to [0, 1]; TF32 / bf16 keep 10 / 8 mantissa bits in the convolutions); P(fake) within
1e-3 (fp32) and 0.05 (bf16); every training loss finite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepfake_attention import AttentionMapModel, Detector, analyze
from deepfake_attention.data.transforms import resize_square
from deepfake_attention.detector import DEFAULT_MODEL_DIR
from deepfake_attention.device import amp_dtype
from deepfake_attention.train.config import LossSection
from deepfake_attention.train.losses import training_losses

from _common import print_table
from _timing import Verdict, add_arguments, legend, load_line, measure

AMP_MODES = ("off", "bf16", "fp16")


def blocks(step: Callable[[], object], count: int) -> Callable[[], None]:
    """``count`` calls of ``step`` as one timed call of a variant (``measure`` synchronises after it)."""

    def run() -> None:
        for _ in range(count):
            step()

    return run


def train_step(amp: str, batch: int, size: int, *, layout: torch.memory_format, compile: bool, device: str = "cuda") -> tuple[Callable[[], None], Callable[[], float]]:
    """One AdamW step on the trunk model with the training losses, and a function returning the last loss."""
    torch.manual_seed(0)
    device = torch.device(device)
    model = AttentionMapModel(trunk="mobilenet_v2_s8").to(device, memory_format=layout).train()
    net = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=layout)
    labels = torch.arange(batch, device=device) % 2
    masks = torch.zeros(batch, 1, size, size, device=device)
    masks[1::2, :, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    has_mask = labels.bool()
    state = {"loss": torch.zeros(())}

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(images)
        terms = training_losses(out["output"], out["attention_weights"], labels, masks, has_mask, LossSection())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
        state["loss"] = terms["total"].detach()

    return step, lambda: float(state["loss"])


def crops(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Face-like test crops: shifted windows of scikit-image's astronaut photograph (bundled, offline)."""
    from skimage.data import astronaut

    image, rng = astronaut(), np.random.default_rng(seed)
    out = []
    for _ in range(count):
        y, x = rng.integers(0, 120, size=2)
        out.append(resize_square(image[y : y + 260, x + 100 : x + 360], size))
    return out


def map_check(model_dir: Path | None, batch: list[np.ndarray]) -> tuple[list[list[object]], bool]:
    """Max abs differences of CUDA maps and P(fake) from the CPU ones; rows and whether all pass."""
    reference = Detector.load(model_dir, device="cpu", amp="off").predict(batch, cam=True)
    rows, passed = [], True
    settings = [("fp32, TF32 off", "off", False, 1e-3, 1e-3), ("fp32, TF32 on (default)", "off", True, 0.1, 1e-3), ("bf16 autocast", "bf16", True, 0.1, 0.05)]
    for name, amp, tf32, map_tol, prob_tol in settings:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        got = Detector.load(model_dir, device="cuda", amp=amp).predict(batch, cam=True)
        cam = max(float(np.abs(a.gradcampp - b.gradcampp).max()) for a, b in zip(got, reference))
        attention = max(float(np.abs(a.attention - b.attention).max()) for a, b in zip(got, reference))
        prob = max(abs(a.prob_fake - b.prob_fake) for a, b in zip(got, reference))
        ok = cam <= map_tol and attention <= map_tol and prob <= prob_tol
        passed &= ok
        rows.append([name, f"{cam:.2e}", f"{attention:.2e}", f"{prob:.2e}", f"{map_tol:g} / {prob_tol:g}", "PASS" if ok else "FAIL"])
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False  # torch's defaults
    return rows, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="training batch and faces per forward pass")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting, split over the --repeats rounds")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (adds a minute or two of compilation)")
    parser.add_argument("--model", default=None, help="checkpoint for the analysis rows (default: the shipped model)")
    parser.add_argument("--images", type=int, default=256, help="generated images for the end-to-end analyze run")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers for the end-to-end analyze run")
    add_arguments(parser, repeats=5, warmup=1)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is available here (torch.cuda.is_available() is False); nothing to check. "
              "Run this script on a machine with an NVIDIA GPU.")
        return 0
    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    size = Detector.load(model_dir, device="cpu").config.preprocess.size
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bf16 supported: {torch.cuda.is_bf16_supported()}; trunk model mobilenet_v2_s8 at {size}x{size}, batch {args.batch}")
    started = time.perf_counter()
    ok = True

    per_block = max(1, args.steps // args.repeats)
    print(legend(args.repeats, args.warmup_rounds) + f"; one timed call = {per_block} steps or batches, CUDA-synchronised")
    verdict = Verdict()
    runs = [(amp, torch.channels_last, False) for amp in AMP_MODES] + [("bf16", torch.contiguous_format, False)]
    runs += [("bf16", torch.channels_last, True)] if args.compile else []
    steps = {(amp, "channels_last" if layout == torch.channels_last else "contiguous", "yes" if compiled else "no"):
             train_step(amp, args.batch, size, layout=layout, compile=compiled) for amp, layout, compiled in runs}
    t = measure({name: blocks(step, per_block) for name, (step, _) in steps.items()}, repeats=args.repeats, warmup=args.warmup_rounds,
                sync=torch.cuda.synchronize)
    rows = []
    for name, (_, last_loss) in steps.items():
        loss = last_loss()
        ok &= bool(np.isfinite(loss))
        rows.append([*name, t.rate(name, per_block).show(2), t.rate(name, per_block * args.batch).show(0), f"{loss:.4f}"])
    print("\ntraining (AdamW step, CE + attention losses; all settings interleaved)")
    print_table(["amp", "layout", "compile", "steps/s", "samples/s", "last loss"], rows)
    del steps, t

    batch = crops(args.batch, size)
    detectors = {amp: Detector.load(model_dir, device="cuda", amp=amp) for amp in AMP_MODES}
    fns = {}
    for amp, detector in detectors.items():
        fns[amp, "Grad-CAM++", "no"] = blocks(lambda detector=detector: detector.predict(batch, cam=True), per_block)
        fns[amp, "scores + attention", "no"] = blocks(lambda detector=detector: detector.predict(batch, cam=False), per_block)
    if args.compile:
        compiled = Detector.load(model_dir, device="cuda", amp="bf16", compile=True)
        fns["bf16", "scores + attention", "yes"] = blocks(lambda: compiled.predict(batch, cam=False), per_block)
    t = measure(fns, repeats=args.repeats, warmup=args.warmup_rounds, sync=torch.cuda.synchronize)
    rows = [[*name, t.rate(name, per_block * args.batch).show(0)] for name in fns]
    for amp in AMP_MODES:
        verdict.ratio(f"analysis {amp}: Grad-CAM++ time / scores-only time", t.ratio((amp, "Grad-CAM++", "no"), (amp, "scores + attention", "no")),
                      at_least=1.0, why="Grad-CAM++ runs the scoring forward and more")
    print("\nanalysis: Detector.predict on uint8 crops (resize + normalise on CPU, pinned non-blocking copy, channels_last; all settings interleaved)")
    print_table(["amp", "maps", "compile", "images/s"], rows)
    del detectors, fns, t

    rows, passed = map_check(Path(args.model) if args.model else None, batch[:16])
    ok &= passed
    print(f"\nmaps on CUDA against CPU (max abs difference over {min(16, len(batch))} crops; maps are in [0, 1])")
    print_table(["CUDA setting", "Grad-CAM++", "attention", "P(fake)", "tolerance map / prob", "result"], rows)

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        from PIL import Image

        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, crop in enumerate(crops(args.images, 320, seed=1)):
            Image.fromarray(crop).save(folder / f"img{i:04d}.jpg", quality=90)
        start = time.perf_counter()
        summary = analyze([folder], Path(tmp) / "out", model=args.model, device="cuda", amp="auto", workers=args.workers,
                          batch_size=args.batch, progress=False, save_maps="none", face_detect=False)
        seconds = time.perf_counter() - start
        ok &= summary.counts["ok"] == args.images
        print(f"\nanalyze end to end: {args.images} JPEGs, amp auto, {args.workers} workers, no panels: {seconds:.1f} s "
              f"({args.images / seconds:.0f} items/s, model loading and worker start-up included); "
              f"model waited for data {summary.data_wait_fraction:.0%} of the time; counts {summary.counts}")
    print(f"\n{'ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - started:.0f} s")
    unreliable = verdict.report(args.strict, load=load_line("after the run"))
    return 0 if ok and not unreliable else 1


if __name__ == "__main__":
    sys.exit(main())
