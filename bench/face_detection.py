"""Face detection: MTCNN against today's Haar cascade, for recall, extra boxes, tight crops and speed.

1. Recall on the real-face corpus (the folder given, by default ``../shared/data/real-faces``;
   skipped with a message when it is absent): for every file with ``people = 1`` in its
   ``manifest.csv`` (images, and the middle frame of each video), the share with at least one box
   (recall) and with more than one box (extras), per ``group`` and detector. Goals for MTCNN:
   recall >= 99 %, extras <= 1 %. (A people=1 photo can still show a face in the background: an
   "extra" is not always a false detection.)
2. Tight crops: for each of those files, the first MTCNN box enlarged 1.0x (a square of its longer
   side, :func:`square_crop_box`), resized to 240x240, given to both detectors: the share with
   exactly one face. Also the share found when the image is cut through the face's centre, so half
   of the face is outside the frame on the left.
3. Speed: milliseconds per 1280x720 frame of ``ffpp_original_004.mp4`` (decoded with PyAV), both
   detectors on a copy whose longest side is 640 px, torch and OpenCV at ``--threads`` threads,
   timed in alternation (A B A B) after a warm-up; medians. MTCNN one frame per call and all
   ``--frames`` frames in one call (per frame). Goal: MTCNN <= 2x Haar.

    python bench/face_detection.py [CORPUS] [--video PATH] [--threads 2] [--frames 16] [--repeats 5] [--skip-recall] [--skip-speed]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from _common import print_table
from deepfake_attention.crops import square_crop_box
from deepfake_attention.data.detectors import get_face_detector
from deepfake_attention.data.media import read_image
from deepfake_attention.data.mtcnn import MTCNNDetector
from deepfake_attention.data.video import iter_sampled_frames

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = SHARED / "real-faces"
VIDEO = SHARED / "real-videos" / "ffpp_original_004.mp4"
Counter = Callable[[np.ndarray], int]


def single_face_files(corpus: Path) -> list[tuple[str, str, np.ndarray]]:
    """``(file, group, RGB image)`` for each ``people = 1`` row (a video gives its middle frame)."""
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["people"] == "1"]
    out = []
    for row in rows:
        path = corpus / row["file"]
        image = read_image(path) if row["kind"] == "image" else next(iter(iter_sampled_frames(path, frames=1))).image
        out.append((row["file"], row["group"], image))
    return out


def recall(corpus: Path) -> None:
    files = single_face_files(corpus)
    mtcnn, haar = MTCNNDetector(), get_face_detector("haar")
    counters: dict[str, Counter] = {"mtcnn": lambda im: len(mtcnn.detect([im])[0]), "haar": lambda im: len(haar.detect(im))}
    counts: dict[tuple[str, str], list[int]] = defaultdict(list)
    tight: dict[str, list[int]] = defaultdict(list)
    cut: dict[str, list[int]] = defaultdict(list)
    missed: dict[str, list[str]] = defaultdict(list)
    start = time.perf_counter()
    for file, group, image in files:
        found = mtcnn.detect([image])[0]
        for name, count in counters.items():
            n = len(found) if name == "mtcnn" else count(image)
            counts[(group, name)].append(n)
            if n == 0:
                missed[name].append(file)
        if len(found):
            box = tuple(int(round(v)) for v in found.boxes[0])
            x0, y0, x1, y1 = square_crop_box(box, image.shape, 1.0)
            crop = cv2.resize(image[y0:y1, x0:x1], (240, 240), interpolation=cv2.INTER_AREA)
            half = np.ascontiguousarray(image[:, (box[0] + box[2]) // 2 :])
            for name, count in counters.items():
                tight[name].append(count(crop))
                cut[name].append(count(half))
    rows = []
    for (group, name), values in sorted(counts.items()):
        v = np.array(values)
        rows.append([group, name, len(v), float(np.mean(v >= 1)), float(np.mean(v > 1))])
    for name in counters:
        v = np.array([n for (group, other), values in counts.items() if other == name for n in values])
        rows.append(["all", name, len(v), float(np.mean(v >= 1)), float(np.mean(v > 1))])
    print(f"\n1. people=1 files of {corpus.name} ({time.perf_counter() - start:.0f} s): share with >= 1 box (recall) and > 1 box (extras)")
    print_table(["group", "detector", "files", "recall", "extras"], rows)
    for name, files_missed in missed.items():
        print(f"   {name} missed {len(files_missed)}: {' '.join(files_missed[:12])}{' ...' if len(files_missed) > 12 else ''}")
    print("\n2. tight crops (MTCNN box x1.0, 240x240) and the image cut through the face centre (left half out)")
    rows = [[name, len(tight[name]), float(np.mean(np.array(tight[name]) == 1)), float(np.mean(np.array(tight[name]) >= 1)), float(np.mean(np.array(cut[name]) >= 1))] for name in counters]
    print_table(["detector", "crops", "tight: one face", "tight: >= 1 face", "half cut: found"], rows)


def speed(video: Path, frames: int, repeats: int) -> None:
    import av

    images = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        total = stream.frames or 300
        step = max(1, total // frames)
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                images.append(frame.to_ndarray(format="rgb24"))
            if len(images) == frames:
                break
    mtcnn, haar = MTCNNDetector(), get_face_detector("haar")
    runs: dict[str, Callable[[], object]] = {
        "haar": lambda: [haar.detect(image) for image in images],
        "mtcnn, 1 frame per call": lambda: [mtcnn.detect([image]) for image in images],
        f"mtcnn, {len(images)} frames per call": lambda: mtcnn.detect(images),
    }
    for run in runs.values():  # warm-up: lazy loading, allocator, OpenCV's and torch's thread pools
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            begin = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - begin) / len(images) * 1000)
    haar_ms = statistics.median(times["haar"])
    faces = [len(haar.detect(images[0])), len(mtcnn.detect(images[:1])[0])]
    print(f"\n3. ms per {images[0].shape[1]}x{images[0].shape[0]} frame of {video.name} ({len(images)} frames, {repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads; faces in frame 0: haar {faces[0]}, mtcnn {faces[1]})")
    print_table(["detector", "median ms/frame", "min ms/frame", "x haar"], [[name, statistics.median(t), min(t), statistics.median(t) / haar_ms] for name, t in times.items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS, help="the real-face corpus folder (with manifest.csv)")
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if not args.skip_recall:
        if (args.corpus / "manifest.csv").is_file():
            recall(args.corpus)
        else:
            print(f"skipping recall: no corpus at {args.corpus} (pass the real-faces folder, with its manifest.csv)")
    if not args.skip_speed:
        if args.video.is_file():
            speed(args.video, args.frames, args.repeats)
        else:
            print(f"skipping speed: no video at {args.video} (pass --video)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
