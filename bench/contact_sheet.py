"""Contact sheet of synthesized forgeries, plus face-finding counts and timing on the inputs.

Runs :func:`deepfake_attention.data.synth_writer.synthesize` twice (family ``sbi`` and
``other``, one fake per face) into a work folder, prints how many frames and faces the inputs
gave (detector hits per frame) and the detection time per frame, then renders ``--count``
fakes, half of each family, one per row:

    real (same post-processing) | fake | M (gray) | B = 4M(1-M) (colour) | |fake - real| x4 | fake with the M = max/2 contour

Example (the note's figure):
    .venv/bin/python bench/contact_sheet.py ../shared/data/real-videos --out ../notes/contact_sheet.png --landmarks
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw

from deepfake_attention.data.face_records import read_faces
from deepfake_attention.data.faces import detect_faces
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.data.synth import family_config
from deepfake_attention.data.synth_dataset import make_sample
from deepfake_attention.data.synth_writer import synthesize
from deepfake_attention.explain.render import map_png

from _timing import Stats, measure

TILE = 160
CAPTION = 14


def hits_per_frame(folder: Path) -> dict[str, Counter]:
    """For each input: how many frames had 0, 1, 2... faces (from faces.jsonl and synth.json)."""
    per_frame = Counter()
    for line in (folder / "faces.jsonl").read_text().splitlines():
        face = json.loads(line)
        per_frame[(face["source_id"], face["frame"])] += 1
    result: dict[str, Counter] = {}
    for (source, _), hits in per_frame.items():
        result.setdefault(source, Counter())[hits] += 1
    return result


def detection_ms(video: Path, frames: int = 8, repeats: int = 3) -> tuple[Stats, tuple[int, int]]:
    """Milliseconds per frame of ``detect_faces`` on the first ``frames`` frames of ``video``: each
    round detects on all of them, after one untimed warm-up round (the cascade loads on first use)."""
    images = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) == frames:
                break
    timings = measure({"detect": lambda: [detect_faces(image) for image in images] and None}, repeats=repeats, warmup=1)
    return timings["detect"].map(lambda seconds: 1000 * seconds / len(images)), images[0].shape[:2]


def alignment(folder: Path, family: str, seed: int, per_face: int = 4) -> tuple[float, float, float]:
    """Fractions of pixels changed (fake != real) outside the dilated mask M > 0.02 before any
    post-processing (JPEG and resizing off): (mean, max) over faces x ``per_face`` fakes, and
    the largest fraction changed where M == 0 exactly."""
    faces = read_faces(folder)
    config = family_config(family, jpeg_prob=0.0, downscale_prob=0.0)
    kernel = np.ones((7, 7), np.uint8)
    fractions, exact = [], 0.0
    for index in range(len(faces) * per_face):
        sample = make_sample(faces, index, seed=seed, family=family, config=config, image_index=index // per_face)
        changed = np.any(sample.image != sample.target, axis=2)
        inside = cv2.dilate((sample.mask > 0.02).astype(np.uint8), kernel) > 0
        fractions.append(float(np.mean(changed & ~inside)))
        exact = max(exact, float(np.mean(changed & (sample.mask == 0))))
    return float(np.mean(fractions)), max(fractions), exact


def tile(image: np.ndarray | Image.Image) -> Image.Image:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    return picture.convert("RGB").resize((TILE, TILE), Image.BILINEAR)


def row_tiles(folder: Path, fake_path: str, mask_path: str, real_path: str) -> list[Image.Image]:
    fake = np.asarray(Image.open(folder / fake_path).convert("RGB"))
    real = np.asarray(Image.open(folder / real_path).convert("RGB"))
    mask = np.asarray(Image.open(folder / mask_path), dtype=np.float32) / 255.0
    boundary = 4 * mask * (1 - mask)
    diff = np.clip(np.abs(fake.astype(int) - real).max(axis=2) * 4, 0, 255).astype(np.uint8)
    outline = fake.copy()
    contours, _ = cv2.findContours((mask > 0.5 * max(mask.max(), 1e-6)).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(outline, contours, -1, (0, 255, 0), max(1, fake.shape[0] // 120))
    return [tile(real), tile(fake), tile((mask * 255).astype(np.uint8)), tile(map_png(boundary)), tile(diff), tile(outline)]


def caption(params: dict) -> str:
    mask = params["mask"]["shape"]
    post = params["post"]
    jpeg = f"jpeg q{post['jpeg_quality']}" if "jpeg_quality" in post else "no jpeg"
    if params["family"] == "sbi":
        how = f"ratio {params['feather']['ratio']:g}, changed {params['changed']}"
    else:
        how = f"{params['blend']['method']}, align {params['align']}"
    return f"{params['family']}: {mask} mask, {how}, {jpeg}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="real face images, videos or folders")
    parser.add_argument("--out", required=True, help="PNG to write (keep it outside the repository)")
    parser.add_argument("--work", default=None, help="folder for the synthesized datasets (default: a temporary folder)")
    parser.add_argument("--count", type=int, default=12, help="fakes on the sheet, half per family (default 12)")
    parser.add_argument("--frames-per-video", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--landmarks", action="store_true", help="68-point landmark masks (needs the landmarks extra)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.work or temporary)
        chosen = []
        for family in ("sbi", "other"):
            folder = work / family
            start = time.perf_counter()
            manifest = synthesize(args.inputs, folder, per_face=1, seed=args.seed, family=family, landmarks=args.landmarks,
                                  frames_per_video=args.frames_per_video, progress=False)
            counts = json.loads((folder / "synth.json").read_text())["counts"]
            print(f"{family}: {counts} in {time.perf_counter() - start:.1f} s")
            mean, worst, exact = alignment(folder, family, args.seed)
            print(f"  changed pixels outside the mask (M > 0.02, dilated 3 px), before JPEG: mean {mean:.2e}, max {worst:.2e}; where M == 0: max {exact:.2e}")
            if family == "sbi":
                for source, hist in sorted(hits_per_frame(folder).items()):
                    print(f"  {source}: frames by number of faces found {dict(sorted(hist.items()))}")
            rows = read_manifest(manifest)
            reals = {Path(r.path).stem: r.path for r in rows if r.label == "real"}
            fakes = [r for r in rows if r.label == "fake"]
            params = {json.loads(line)["path"]: json.loads(line) for line in (folder / "params.jsonl").read_text().splitlines()}
            picks = np.linspace(0, len(fakes) - 1, max(1, args.count // 2)).round().astype(int)
            for k in picks:
                row = fakes[k]
                relative = Path(os.path.relpath(row.path, folder)).as_posix()
                real = reals[Path(row.path).stem.rsplit("-n", 1)[0]]
                chosen.append((folder, relative, os.path.relpath(row.mask, folder), os.path.relpath(real, folder), params[relative]))
        videos = [Path(p) for p in args.inputs if Path(p).is_file() and Path(p).suffix.lower() in {".mp4", ".avi", ".mov", ".mkv"}]
        videos += [p for d in args.inputs if Path(d).is_dir() for p in sorted(Path(d).rglob("*.mp4"))]
        if videos:
            ms, shape = detection_ms(videos[0])
            print(f"detection: {ms.show(1)} ms per {shape[1]}x{shape[0]} frame (Haar, 640 px copy; median [q1-q3] of {len(ms.values)} rounds "
                  "over the first 8 frames, after a warm-up round)")
        sheet = Image.new("RGB", (6 * TILE, len(chosen) * (TILE + CAPTION) + CAPTION), "white")
        draw = ImageDraw.Draw(sheet)
        draw.text((4, 1), "real | fake | mask M | boundary 4M(1-M) | |fake-real| x4 | M contour", fill="black")
        for n, (folder, fake, mask, real, params) in enumerate(chosen):
            top = CAPTION + n * (TILE + CAPTION)
            draw.text((4, top + 1), caption(params), fill="black")
            for m, picture in enumerate(row_tiles(folder, fake, mask, real)):
                sheet.paste(picture, (m * TILE, top + CAPTION))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.out)
        print(f"wrote {args.out} ({len(chosen)} fakes)")


if __name__ == "__main__":
    main()
