"""Face tracks per video: do the voting tracks match the people in it?

Runs ``analyze`` on the two shared FaceForensics++ originals and every video of the real-face
corpus (its manifest says how many people each shows) with a tiny untrained checkpoint per
detector (tracks and their votes depend on the detector, not on the scores), and prints per
detector: tracks per video, videos whose used tracks equal their people, and the mismatches.

    python bench/video_tracks.py [SHARED_DATA] [--detectors mtcnn haar] [--frames 32]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from deepfake_attention import AttentionMapModel, CheckpointConfig, Preprocess, analyze, save_checkpoint

from _common import print_table

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FFPP = ("ffpp_original_004.mp4", "ffpp_original_634.mp4")


def videos(shared: Path) -> list[tuple[Path, int]]:
    """(video, people) for the shared FF++ originals (one person each) and the corpus's videos."""
    found = [(shared / "real-videos" / name, 1) for name in FFPP if (shared / "real-videos" / name).is_file()]
    manifest = shared / "real-faces" / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as handle:
            found += [(shared / "real-faces" / row["file"], int(row["people"])) for row in csv.DictReader(handle) if row["kind"] == "video"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", type=Path, default=SHARED, help="the shared data folder (real-videos/, real-faces/)")
    parser.add_argument("--detectors", nargs="+", default=["mtcnn", "haar"])
    parser.add_argument("--frames", type=int, default=32, help="sampled frames per video (analyze's default 32)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    items = videos(args.shared)
    if not items:
        print(f"no videos under {args.shared} (pass the shared data folder)")
        return 0
    rows, mismatches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.detectors:
            checkpoint = Path(tmp) / f"ckpt-{name}"
            model = AttentionMapModel(feature_dim=16)
            save_checkpoint(model, checkpoint, CheckpointConfig(model=model.get_config(), preprocess=Preprocess(size=32, detector=name), trained=True))
            summary = analyze([v for v, _ in items], Path(tmp) / f"out-{name}", model=checkpoint, frames=args.frames, cam=False,
                              save_maps="none", workers=args.workers, progress=False)
            counts = [(len(row.extra.get("tracks") or []), sum(t["used"] for t in row.extra.get("tracks") or [])) for row in summary.rows]
            single = [(used, people) for (_, used), (_, people) in zip(counts, items) if people == 1]
            rows.append([name, len(items), sum(t for t, _ in counts) / len(items), max(t for t, _ in counts),
                         f"{sum(u == p for (_, u), (_, p) in zip(counts, items))}/{len(items)}", f"{sum(u == 1 for u, _ in single)}/{len(single)}"])
            mismatches += [(name, video.name, people, tracks, used) for (tracks, used), (video, people) in zip(counts, items) if used != people]
    print_table(["detector", "videos", "tracks / video", "max tracks", "used tracks == people", "one-person videos with one used track"], rows)
    for name, video, people, tracks, used in mismatches:
        print(f"  {name}: {video}: {people} people, {tracks} tracks, {used} used")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
