"""Face detection: MTCNN against today's Haar cascade, for recall, extra boxes, tight crops and speed.

1. Recall on the real-face corpus (the folder given, by default ``../shared/data/real-faces``;
   skipped with a message when it is absent): for every file with ``people = 1`` in its
   ``manifest.csv`` (images, and the middle frame of each video), the share with at least one box
   (recall) and with more than one box (extras), per ``group`` and detector. Goals for MTCNN:
   recall >= 99 %, extras <= 1 %. (A people=1 photo can still show a face in the background: an
   "extra" is not always a false detection.) Then the files with several people: faces found per
   person stated (an estimate for crowds), per group and detector.
2. Tight crops: for each of those files, the first MTCNN box enlarged 1.0x (a square of its longer
   side, :func:`square_crop_box`), resized to 240x240, given to both detectors: the share with
   exactly one face. Also the share found when the image is cut through the face's centre, so half
   of the face is outside the frame on the left.
3. Speed: milliseconds per 1280x720 frame of ``ffpp_original_004.mp4`` (decoded with PyAV), both
   detectors on a copy whose longest side is 640 px, torch and OpenCV at ``--threads`` threads,
   timed with ``bench/_timing.py`` (a warm-up round, rotated interleaved rounds, medians with their
   IQR, paired per-round ratios, and a verdict that says UNRELIABLE when they spread or the machine
   was busy). MTCNN one frame per call and all ``--frames`` frames in one call (per frame). Goal:
   MTCNN <= 2x Haar.

    python bench/face_detection.py [CORPUS] [--video PATH] [--threads 2] [--frames 16] [--repeats 5] [--strict] [--skip-recall] [--skip-speed]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from deepfake_attention.crops import square_crop_box
from deepfake_attention.data.detectors import get_face_detector
from deepfake_attention.data.media import read_image
from deepfake_attention.data.mtcnn import MTCNNDetector
from deepfake_attention.data.video import iter_sampled_frames

from _common import print_table
from _timing import Verdict, legend, load_line, measure

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = SHARED / "real-faces"
VIDEO = SHARED / "real-videos" / "ffpp_original_004.mp4"
Counter = Callable[[np.ndarray], int]


def corpus_files(corpus: Path, single: bool = True) -> list[tuple[str, str, np.ndarray, int]]:
    """``(file, group, RGB image, people)`` for each ``people = 1`` row (``single``) or each other row
    (a video gives its middle frame)."""
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if (row["people"] == "1") == single]
    out = []
    for row in rows:
        path = corpus / row["file"]
        image = read_image(path) if row["kind"] == "image" else next(iter(iter_sampled_frames(path, frames=1))).image
        out.append((row["file"], row["group"], image, int(row["people"])))
    return out


def several_people(corpus: Path) -> None:
    """Files with several people: faces found / people stated (an estimate for crowds), per group and detector."""
    mtcnn, haar = MTCNNDetector(), get_face_detector("haar")
    found: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for _, group, image, people in corpus_files(corpus, single=False):
        found[(group, "mtcnn")].append((len(mtcnn.detect([image])[0]), people))
        found[(group, "haar")].append((len(haar.detect(image)), people))
    rows = [[group, name, len(v), sum(p for _, p in v), sum(f for f, _ in v) / sum(p for _, p in v), float(np.mean([min(f, p) / p for f, p in v]))]
            for (group, name), v in sorted(found.items())]
    print("\n1b. files with several people: faces found / people (all files), and the mean share of each file's people found (capped at 1)")
    print_table(["group", "detector", "files", "people", "found / people", "mean share found"], rows)


def recall(corpus: Path) -> None:
    files = [(file, group, image) for file, group, image, _ in corpus_files(corpus)]
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


def speed(video: Path, frames: int, repeats: int) -> Verdict:
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
    timed = measure(runs, repeats=repeats, warmup=1)
    verdict = Verdict()
    faces = [len(haar.detect(images[0])), len(mtcnn.detect(images[:1])[0])]
    print(f"\n3. ms per {images[0].shape[1]}x{images[0].shape[0]} frame of {video.name} ({len(images)} frames; {legend(repeats, 1)}; "
          f"{torch.get_num_threads()} threads; faces in frame 0: haar {faces[0]}, mtcnn {faces[1]})")
    rows = []
    for name in runs:
        per_frame = timed[name].map(lambda seconds: 1000 * seconds / len(images))
        ratio = verdict.ratio(f"{name} / haar", timed.ratio(name, "haar")) if name != "haar" else None
        rows.append([name, per_frame.show(1), f"{per_frame.low:.1f}", ratio.show_ratio() if ratio else "1"])
    print_table(["detector", "ms/frame median [IQR]", "min ms/frame", "x haar, paired per round"], rows)
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS, help="the real-face corpus folder (with manifest.csv)")
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--strict", action="store_true", help="exit 1 when the timing is unreliable")
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if not args.skip_recall:
        if (args.corpus / "manifest.csv").is_file():
            recall(args.corpus)
            several_people(args.corpus)
        else:
            print(f"skipping recall: no corpus at {args.corpus} (pass the real-faces folder, with its manifest.csv)")
    if not args.skip_speed:
        if args.video.is_file():
            return speed(args.video, args.frames, args.repeats).report(args.strict, load=load_line("after the run"))
        print(f"skipping speed: no video at {args.video} (pass --video)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
