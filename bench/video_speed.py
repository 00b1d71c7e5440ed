"""Video analysis speed per stage and end to end, and peak memory against video length.

1. On the two real videos in ``../shared/data/real-videos/`` (skipped with a message when absent):
   each stage timed alone on the same sampled frames -- decode (PyAV, sequential, 32 samples per
   video), face detection (the checkpoint's detector; Haar when it has none, see --detector), model
   forward, Grad-CAM++ (forward + Grad-CAM++ minus forward, paired per round) and rendering
   (timeline + contact sheet, from the run's own timings) -- and ``analyze`` end to end with
   decoding and detection in DataLoader workers overlapping the model: wall time, sampled frames/s
   and the ratio end-to-end / slowest stage (goal <= 1.25). All of them are variants of one
   interleaved measurement (``_timing``: warm-up round, rotated rounds, medians [IQR], paired
   ratios); the speed part ends with its verdict line (``--strict``: exit 1 when UNRELIABLE).
2. Peak RSS of ``analyze`` (one process, workers=0) on long 1080p videos the bench writes itself
   (cheap synthetic content: a face over a static textured background, 2 fps), for two lengths:
   with the default 32 samples and with ``fps=0.5`` (more samples for the longer video, streamed in
   chunks). Goal: flat in video length.

    python bench/video_speed.py [--model DIR] [--workers 1] [--frames 32] [--minutes 2 4] [--skip-speed] [--skip-memory]
                               [--repeats 3] [--warmup-rounds 1] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_attention import Detector, analyze
from deepfake_attention.data.faces import find_faces
from deepfake_attention.data.transforms import resize_square
from deepfake_attention.data.video import iter_sampled_frames

from _common import print_table
from _timing import Stats, Verdict, add_arguments, legend, load_line, measure

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-videos"


def load_detector(model: str | None, detector: str) -> Detector:
    """The checkpoint, with ``detector`` as face detector when the checkpoint has none (the shipped
    placeholder was made without one): a trained model pays for detection, so the bench does too."""
    loaded = Detector.load(model, device="cpu")
    if loaded.config.preprocess.detector == "none" and detector != "none":
        print(f"note: the checkpoint has detector='none'; the bench detects faces with {detector!r} so that stage is measured")
        loaded.set_preprocess(detector=detector)
    return loaded


def stage_variants(videos: list[Path], detector: Detector, frames: int, batch: int, workers: int, out: Path) -> tuple[dict, dict[str, int]]:
    """One callable per stage, each doing its stage alone on the same sampled frames, plus ``analyze``
    end to end; the inputs of the later stages are made once here, untimed."""
    pre = detector.config.preprocess
    decoded = [frame.image for video in videos for frame in iter_sampled_frames(video, frames=frames)]
    crops = [resize_square(face.crop, pre.size) for image in decoded for face in find_faces(image, pre)]
    runs = iter(range(1_000_000))

    def decode() -> None:
        for video in videos:
            for _ in iter_sampled_frames(video, frames=frames):
                pass

    def detect() -> None:
        [resize_square(face.crop, pre.size) for image in decoded for face in find_faces(image, pre)]

    def model(cam: bool) -> None:
        for begin in range(0, len(crops), batch):
            detector.predict(crops[begin : begin + batch], cam=cam)

    def end_to_end() -> dict:
        summary = analyze(videos, out / f"run{next(runs)}", model=detector, frames=frames, workers=workers, batch_size=batch, progress=False)
        return {"frames": sum(len(row.extra["frames"]) for row in summary.rows), "timings": [row.extra["timings"] for row in summary.rows],
                "rows": [(Path(row.path).name, row.status, row.prob_fake, row.faces, row.extra["frames_without_face"], row.model_trained)
                         for row in summary.rows]}

    fns = {"decode": decode, "face detection": detect, "model forward": lambda: model(False), "forward + Grad-CAM++": lambda: model(True),
           "end to end": end_to_end}
    return fns, {"sampled frames": len(decoded), "faces": len(crops)}


def speed(args: argparse.Namespace) -> int:
    videos = sorted(REAL_VIDEOS.glob("*.mp4")) if REAL_VIDEOS.is_dir() else []
    if len(videos) < 2:
        print(f"SKIPPED speed: the two real videos are not in {REAL_VIDEOS} (they ship beside the project, not with it)")
        return 0
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"videos: {', '.join(v.name for v in videos)}; {args.frames} samples each, batch {args.batch}, workers {args.workers}")
    print(legend(args.repeats, args.warmup_rounds))
    detector = load_detector(args.model, args.detector)
    with tempfile.TemporaryDirectory() as tmp:
        fns, counts = stage_variants(videos, detector, args.frames, args.batch, args.workers, Path(tmp))
        t = measure(fns, repeats=args.repeats, warmup=args.warmup_rounds)
    runs = t.results["end to end"]
    rounds = [{"decode": t.seconds["decode"][r], "face detection": t.seconds["face detection"][r], "model forward": t.seconds["model forward"][r],
               "Grad-CAM++": t.seconds["forward + Grad-CAM++"][r] - t.seconds["model forward"][r],
               "rendering": sum(timing["render_s"] for timing in runs[r]["timings"])} for r in range(t.repeats)]
    stages = {name: Stats.of(values[name] for values in rounds) for name in rounds[0]}
    verdict = Verdict()
    verdict.ratio("(forward + Grad-CAM++) / forward", t.ratio("forward + Grad-CAM++", "model forward"), at_least=1.0,
                  why="forward + Grad-CAM++ cannot be faster than the forward it contains")
    slowest = max(stages, key=lambda name: stages[name].median)
    ratio = verdict.ratio("end-to-end / slowest stage", Stats.of(t.seconds["end to end"][r] / max(rounds[r].values()) for r in range(t.repeats)))
    frames = runs[0]["frames"]
    print(f"\nstages alone ({counts['sampled frames']} sampled frames, {counts['faces']} faces; Grad-CAM++ = per-round (forward + Grad-CAM++) - forward, "
          f"rendering = from each round's end-to-end run):")
    print_table(["stage", "seconds", "frames/s"], [[name, stats.show(), "n/a (not > 0 s)" if stats.low <= 0 else stats.map(lambda sec: counts["sampled frames"] / sec).show(1)]
                                                  for name, stats in stages.items()])
    in_pipeline = {key: Stats.of(sum(timing[key] for timing in run["timings"]) for run in runs) for key in ("decode_s", "detect_s", "model_s", "render_s")}
    print("\nsame stages inside the overlapped run (workers decode and detect while the model runs): "
          + ", ".join(f"{k} {v.show(2)} s" for k, v in in_pipeline.items()))
    wall = t["end to end"]
    print(f"\nend to end: {wall.show(2)} s for {frames} sampled frames = {wall.map(lambda sec: frames / sec).show(1)} frames/s")
    print(f"end-to-end / slowest stage per round (slowest by median: {slowest}, {stages[slowest].show(2)} s) = {ratio.show_ratio(2)}  (goal <= 1.25); "
          f"sum of stages {Stats.of(sum(values.values()) for values in rounds).show(2)} s")
    for name, status, prob, faces, without, trained in runs[-1]["rows"]:
        print(f"  {name}: {status} P(fake)={prob:.4f} tracks={faces} frames without face={without}" + ("  [UNTRAINED placeholder]" if not trained else ""))
    return verdict.report(args.strict, load=load_line("after the speed part"))


def make_long_video(path: Path, minutes: float, fps: float = 2.0) -> Path:
    """A 1920x1080 video of ``minutes`` at ``fps``: a face drifting over a static textured background."""
    import skimage.data
    from PIL import Image

    from deepfake_attention.data.video_writer import write_video

    background = np.random.default_rng(0).integers(40, 200, size=(1080, 1920, 3), dtype=np.uint8)
    face = np.asarray(Image.fromarray(skimage.data.astronaut()[37:190, 147:300]).resize((360, 360)))
    count = int(round(minutes * 60 * fps))

    def frames():
        for i in range(count):
            image = background.copy()
            x = 300 + int(600 * (0.5 + 0.5 * np.sin(i / 40)))
            image[360:720, x : x + 360] = face
            yield image

    write_video(frames(), path, fps, options={"preset": "ultrafast", "crf": "32", "g": "20"})
    return path


def memory(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            start = time.perf_counter()
            video = make_long_video(Path(tmp) / f"long-{minutes:g}min.mp4", minutes)
            made = time.perf_counter() - start
            for sampling in (["--frames", str(args.frames)], ["--fps", "0.5"]):
                command = [sys.executable, __file__, "--memory-child", str(video), "--detector", args.detector, *sampling]
                if args.model:
                    command += ["--model", args.model]
                result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
                rows.append([f"{minutes:g} min", f"{video.stat().st_size / 2**20:.1f} MiB ({made:.0f} s to make)", " ".join(sampling),
                             result["sampled"], result["seconds"], result["rss_before_mib"], result["peak_rss_mib"]])
    print("\npeak memory of analyze (one process, workers=0) on generated 1920x1080 videos at 2 fps "
          "(a memory figure: 'seconds' is one run, for orientation only, not a timing benchmark):")
    print_table(["length", "file", "sampling", "sampled frames", "seconds (one run)", "RSS before MiB", "peak RSS MiB"], rows)


def memory_child(args: argparse.Namespace) -> None:
    detector = load_detector(args.model, args.detector)
    before = _current_rss_mib()
    options = {"fps": args.fps} if args.fps else {"frames": args.frames}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = analyze([args.memory_child], tmp, model=detector, workers=0, progress=False, **options)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"sampled": len(summary.rows[0].extra.get("frames", [])), "seconds": round(seconds, 1), "peak_rss_mib": round(peak, 1),
                      "rss_before_mib": before, "status": summary.rows[0].status}))


def _current_rss_mib() -> float | None:
    """This process's resident memory now (Linux ``/proc``), after the model is loaded; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--detector", default="haar", help="face detector when the checkpoint has none (default haar)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=float, default=None, help=argparse.SUPPRESS)
    add_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return 0
    code = 0
    if not args.skip_speed:
        code = speed(args)
    if not args.skip_memory:
        memory(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
