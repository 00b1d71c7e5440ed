"""End-to-end throughput of ``analyze`` on real photographs: images/s with panels and without, and
where the time goes (decode, face detection, model + explanation, writing).

Inputs: at least 200 whole images of the real-faces corpus (``../shared/data/real-faces`` beside
the project by default, or the folder given), chosen from its ``manifest.csv``: the ``image`` rows
sorted by sha256 (a fixed mix of every group), the first ``--images``. The files are passed to
``analyze`` where they are (nothing is copied), and read once before timing so that every variant
finds them in the page cache. Skipped with a message when the folder or its manifest is absent.

Variants, interleaved (``_timing``): the selection is cut into ``--repeats`` chunks; round i runs
every variant on chunk i (order rotated per round), after a warm-up round on the first
``--warmup-images`` images. The model is loaded once (as a long run or the service has it):

* ``panels``: ``analyze(files, out)`` with its defaults (Grad-CAM++ and a panel per image), i.e.
  ``python -m deepfake_attention analyze FILES --out DIR``;
* ``bare``: ``analyze(files, out, save_maps="none", cam=False)``, i.e. ``--save-maps none --no-cam``;
* ``stages``: the pipeline's own pieces on the same chunk, in this process, each timed: decode
  (read, sha256, ``decode_image``), face detection (``find_faces`` with the checkpoint's detector),
  model + explanation (``Detector.predict(cam=True)`` in batches of ``--batch-size`` faces) and
  writing (words, ``render_panel``, PNG save). ``analyze`` records no such split for images (its
  per-row ``seconds`` lump decode, detection, model share and rendering; ``run.json`` has only the
  loader waits), so the split is measured here; "other" is the panels run minus these stages
  (result rows and files, the report, the pipeline itself), paired per chunk.

    python bench/analyze_throughput.py [REAL_FACES_FOLDER] [--images 200] [--workers 0] [--batch-size 16] [--model DIR] [--threads N]
                                       [--repeats 3] [--warmup-rounds 1] [--warmup-images 8] [--no-stages] [--strict]

About 3 minutes on 2 quiet cores for 200 images (``--images`` and ``--no-stages`` make it shorter).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from deepfake_attention import Detector, analyze

from _common import print_table, set_threads
from _timing import Stats, Verdict, add_arguments, legend, load_line, measure

REAL_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-faces"
STAGES = ("decode", "face detection", "model + explanation", "writing")


def select_images(folder: Path, count: int) -> list[Path]:
    """The first ``count`` image rows of ``manifest.csv`` by sha256 whose file is there."""
    with open(folder / "manifest.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("kind") == "image"]
    rows.sort(key=lambda row: row["sha256"])
    return [path for path in (folder / row["file"] for row in rows) if path.is_file()][:count]


def chunks(items: list[Path], parts: int) -> list[list[Path]]:
    """``items`` cut into ``parts`` contiguous pieces whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def stage_seconds(files: list[Path], detector: Detector, batch_size: int, out: Path) -> dict[str, float]:
    """Each stage of the image pipeline on ``files``, with the library's pieces, timed on its own."""
    from PIL import Image

    from deepfake_attention.analysis.image import describe_face
    from deepfake_attention.data.faces import find_faces
    from deepfake_attention.data.media import MediaError, decode_image, read_bytes
    from deepfake_attention.explain.render import FaceView, render_panel

    pre, threshold = detector.config.preprocess, detector.threshold
    seconds = dict.fromkeys(STAGES, 0.0)
    images = []
    start = time.perf_counter()
    for path in files:
        try:
            data = read_bytes(path)
            hashlib.sha256(data).hexdigest()
            images.append((path, decode_image(data)))
        except MediaError:
            pass
    seconds["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    faces = [(path, find_faces(image, pre)) for path, image in images]
    seconds["face detection"] = time.perf_counter() - start
    crops = [face.crop for _, found in faces for face in found]
    start = time.perf_counter()
    predictions = []
    for begin in range(0, len(crops), batch_size):
        predictions += detector.predict(crops[begin : begin + batch_size], cam=True)
    seconds["model + explanation"] = time.perf_counter() - start
    start = time.perf_counter()
    cursor = 0
    out.mkdir(parents=True, exist_ok=True)
    for k, (path, found) in enumerate(faces):
        preds, cursor = predictions[cursor : cursor + len(found)], cursor + len(found)
        if not preds:
            continue
        for face, pred in zip(found, preds):
            describe_face(pred, face, threshold=threshold)
        views = [FaceView(p.crop, p.attention, p.gradcampp, p.prob_fake, "fake" if p.prob_fake >= threshold else "real") for p in preds]
        panel: Image.Image = render_panel(views, threshold, title=path.name, untrained=not detector.trained)
        panel.save(out / f"{k:04d}.png", format="PNG", compress_level=1)  # as analyze saves its panels
    seconds["writing"] = time.perf_counter() - start
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=REAL_FACES, help="the real-faces corpus (holds manifest.csv and images/)")
    parser.add_argument("--images", type=int, default=200, help="images to analyse, split over the rounds (default 200)")
    parser.add_argument("--warmup-images", type=int, default=8, help="images of each warm-up round (default 8)")
    parser.add_argument("--workers", type=int, default=0, help="analyze's DataLoader workers (default 0, analyze's default)")
    parser.add_argument("--batch-size", type=int, default=16, help="faces per forward pass (default 16, analyze's default)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--no-stages", action="store_true", help="skip the stage split (about a third of the run time)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    add_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    if not (args.folder / "manifest.csv").is_file():
        print(f"SKIPPED: no real-faces corpus at {args.folder} (a folder with manifest.csv and images/); it ships beside the project, "
              "not with it: pass its folder as the first argument")
        return 0
    set_threads(args.threads)
    files = select_images(args.folder, args.images)
    if len(files) < args.repeats or len(files) < args.warmup_images:
        print(f"SKIPPED: only {len(files)} images found from {args.folder / 'manifest.csv'}")
        return 0
    import torch

    for path in files:  # warm the page cache: no variant pays for a cold disk
        path.read_bytes()
    detector = Detector.load(args.model, device="cpu")
    pre = detector.config.preprocess
    parts = chunks(files, args.repeats)
    warm = files[: args.warmup_images]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{len(files)} images from {args.folder.name}/manifest.csv (image rows by sha256; {sum(p.stat().st_size for p in files) / 2**20:.0f} MiB), "
          f"{len(parts)} chunks of {min(map(len, parts))}-{max(map(len, parts))}, one per round; model {args.model or 'shipped default'} "
          f"({detector.config.model.get('trunk') or 'seed'}, {pre.size}x{pre.size}, detector {pre.detector}), loaded once; "
          f"workers {args.workers}, batch {args.batch_size}")
    print(legend(args.repeats, args.warmup_rounds) + f"; warm-up rounds on {len(warm)} images")

    with tempfile.TemporaryDirectory(prefix="analyze-throughput-") as tmp:
        runs = iter(range(1_000_000))

        def schedule() -> Iterator[list[Path]]:
            return iter([warm] * args.warmup_rounds + parts)

        def run(options: dict):
            todo = schedule()

            def call() -> dict:
                chunk = next(todo)
                summary = analyze(chunk, Path(tmp) / f"run{next(runs)}", model=detector, workers=args.workers, batch_size=args.batch_size,
                                  progress=False, **options)
                return {"images": len(chunk), "counts": dict(summary.counts), "faces": sum(row.faces or 0 for row in summary.rows),
                        "row_seconds": sum(row.seconds or 0.0 for row in summary.rows), "data_wait": summary.data_wait_fraction}
            return call

        def stages():
            todo = schedule()
            return lambda: stage_seconds(next(todo), detector, args.batch_size, Path(tmp) / f"stages{next(runs)}")

        fns = {"panels": run({}), "bare": run({"save_maps": "none", "cam": False})}
        if not args.no_stages:
            fns["stages"] = stages()
        t = measure(fns, repeats=len(parts), warmup=args.warmup_rounds)

    verdict = Verdict()
    rows = []
    for name, what in (("panels", "default: Grad-CAM++ + panel"), ("bare", "--save-maps none --no-cam")):
        results = t.results[name]
        per_chunk = Stats.of(result["images"] / seconds for result, seconds in zip(results, t.seconds[name]))
        pooled = sum(result["images"] for result in results) / sum(t.seconds[name])
        counts = {key: sum(result["counts"].get(key, 0) for result in results) for key in ("ok", "no_face", "error")}
        rows.append([f"{name} ({what})", per_chunk.show(2), f"{pooled:.2f}", sum(t.seconds[name]), sum(result["faces"] for result in results),
                     " ".join(f"{k}={v}" for k, v in counts.items()), Stats.of(result["data_wait"] for result in results).show(2)])
    print_table(["variant", "images/s per chunk", "images/s pooled", "seconds", "faces", "rows", "loader wait share (RunSummary)"], rows)
    ratio = verdict.ratio("panels / bare time, paired per chunk", t.ratio("panels", "bare"), at_least=1.0,
                          why="the panels run does everything the bare run does, and more")
    print(f"panels / bare time, paired per chunk: {ratio.show_ratio()}")
    if not args.no_stages:
        split = t.results["stages"]
        panels = t.seconds["panels"]
        other = Stats.of(panels[r] - sum(split[r].values()) for r in range(t.repeats))
        share = {stage: Stats.of(split[r][stage] / panels[r] for r in range(t.repeats)) for stage in STAGES}
        table = [[stage, Stats.of(s[stage] for s in split).show(2), share[stage].show(3)] for stage in STAGES]
        table.append(["other (rows, result files, report, pipeline) = panels run - stages", other.show(2),
                      Stats.of((panels[r] - sum(split[r].values())) / panels[r] for r in range(t.repeats)).show(3)])
        print(f"\nwhere the time of the panels run goes (stages measured with the library's pieces on the same chunks in the same rounds; "
              f"per chunk of ~{len(parts[0])} images):")
        print_table(["stage", "seconds per chunk", "share of the panels run"], table)
        if args.workers == 0:  # in one process the run does every stage itself, so it cannot be shorter than their sum
            verdict.ratio("sum of the stages / panels run, paired per chunk", Stats.of(sum(split[r].values()) / panels[r] for r in range(t.repeats)),
                          at_most=1.0, why="with workers 0 the panels run does every stage itself, in this process")
        else:
            print(f"(with {args.workers} worker(s), decode and detection overlap the model in the panels run: 'other' can be negative)")
    rows_seconds = sum(result["row_seconds"] for result in t.results["panels"])
    print(f"\nwhat analyze records itself: per-row 'seconds' sum {rows_seconds:.1f} s over the panels runs' {sum(t.seconds['panels']):.1f} s "
          "(decode + detection + the row's model share + its panel, not split); run.json: loader start/wait/end only")
    return verdict.report(args.strict, load=load_line("after the run"))


if __name__ == "__main__":
    sys.exit(main())
