"""Video analysis speed per stage and end to end, and peak memory against video length.

1. On the two real videos in ``../shared/data/real-videos/`` (skipped with a message when absent):
   each stage timed alone on the same sampled frames -- decode (PyAV, sequential, 32 samples per
   video), face detection (the checkpoint's detector; Haar when it has none, see --detector), model
   forward, Grad-CAM++ (forward + Grad-CAM++ minus forward) and rendering (timeline + contact sheet,
   from the run's own timings) -- then ``analyze`` end to end with decoding and detection in
   DataLoader workers overlapping the model: wall time, sampled frames/s and the ratio
   end-to-end / slowest stage (goal <= 1.25).
2. Peak RSS of ``analyze`` (one process, workers=0) on long 1080p videos the bench writes itself
   (cheap synthetic content: a face over a static textured background, 2 fps), for two lengths:
   with the default 32 samples and with ``fps=0.5`` (more samples for the longer video, streamed in
   chunks). Goal: flat in video length.

    python bench/video_speed.py [--model DIR] [--workers 1] [--frames 32] [--minutes 2 4] [--skip-speed] [--skip-memory]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import print_table

from deepfake_attention import Detector, analyze
from deepfake_attention.data.faces import find_faces
from deepfake_attention.data.transforms import resize_square
from deepfake_attention.data.video import iter_sampled_frames

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-videos"


def load_detector(model: str | None, detector: str) -> Detector:
    """The checkpoint, with ``detector`` as face detector when the checkpoint has none (the shipped
    placeholder was made without one): a trained model pays for detection, so the bench does too."""
    loaded = Detector.load(model, device="cpu")
    if loaded.config.preprocess.detector == "none" and detector != "none":
        print(f"note: the checkpoint has detector='none'; the bench detects faces with {detector!r} so that stage is measured")
        loaded.config = dataclasses.replace(loaded.config, preprocess=dataclasses.replace(loaded.config.preprocess, detector=detector))
    return loaded


def stage_times(videos: list[Path], detector: Detector, frames: int, batch: int) -> dict[str, float]:
    """Each stage alone, in this process, on the same sampled frames (seconds)."""
    pre = detector.config.preprocess
    start = time.perf_counter()
    decoded = [frame.image for video in videos for frame in iter_sampled_frames(video, frames=frames)]
    decode = time.perf_counter() - start
    start = time.perf_counter()
    crops = [resize_square(face.crop, pre.size) for image in decoded for face in find_faces(image, pre)]
    detect = time.perf_counter() - start
    detector.predict(crops[:batch], cam=True)  # warm-up (thread pools, allocator)

    def model(cam: bool) -> float:
        start = time.perf_counter()
        for begin in range(0, len(crops), batch):
            detector.predict(crops[begin : begin + batch], cam=cam)
        return time.perf_counter() - start

    forward = min(model(False) for _ in range(2))
    with_cam = min(model(True) for _ in range(2))
    return {"sampled frames": len(decoded), "faces": len(crops), "decode": decode, "face detection": detect,
            "model forward": forward, "Grad-CAM++": max(0.0, with_cam - forward)}


def speed(args: argparse.Namespace) -> None:
    videos = sorted(REAL_VIDEOS.glob("*.mp4")) if REAL_VIDEOS.is_dir() else []
    if len(videos) < 2:
        print(f"SKIPPED speed: the two real videos are not in {REAL_VIDEOS} (they ship beside the project, not with it)")
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"videos: {', '.join(v.name for v in videos)}; {args.frames} samples each, batch {args.batch}, workers {args.workers}")
    detector = load_detector(args.model, args.detector)
    stages = stage_times(videos, detector, args.frames, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for k in range(2):  # the second run is warm (imports, fork of the workers' page cache)
            start = time.perf_counter()
            summary = analyze(videos, Path(tmp) / f"run{k}", model=detector, frames=args.frames, workers=args.workers,
                              batch_size=args.batch, progress=False)
            runs.append((time.perf_counter() - start, summary))
        wall, summary = min(runs, key=lambda run: run[0])
    timings = [row.extra["timings"] for row in summary.rows]
    stages["rendering"] = sum(t["render_s"] for t in timings)
    in_pipeline = {key: sum(t[key] for t in timings) for key in ("decode_s", "detect_s", "model_s", "render_s")}
    timed = {k: v for k, v in stages.items() if k not in ("sampled frames", "faces")}
    slowest = max(timed, key=timed.get)
    print(f"\nstages alone ({stages['sampled frames']} sampled frames, {stages['faces']} faces):")
    print_table(["stage", "seconds", "frames/s"], [[name, sec, stages["sampled frames"] / sec if sec else float("inf")] for name, sec in timed.items()])
    print("\nsame stages inside the overlapped run (workers decode and detect while the model runs): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in in_pipeline.items()))
    frames = sum(len(row.extra["frames"]) for row in summary.rows)
    print(f"\nend to end: {wall:.2f} s for {frames} sampled frames = {frames / wall:.1f} frames/s "
          f"(best of {len(runs)}: {', '.join(f'{r[0]:.2f}' for r in runs)} s)")
    print(f"end-to-end / slowest stage ({slowest}, {timed[slowest]:.2f} s) = {wall / timed[slowest]:.2f}  (goal <= 1.25); "
          f"sum of stages {sum(timed.values()):.2f} s")
    for row in summary.rows:
        print(f"  {Path(row.path).name}: {row.status} P(fake)={row.prob_fake:.4f} tracks={row.faces} "
              f"frames without face={row.extra['frames_without_face']}" + ("  [UNTRAINED placeholder]" if not row.model_trained else ""))


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
    print("\npeak memory of analyze (one process, workers=0) on generated 1920x1080 videos at 2 fps:")
    print_table(["length", "file", "sampling", "sampled frames", "seconds", "RSS before MiB", "peak RSS MiB"], rows)


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


def main() -> None:
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
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
