"""Train the fingerprint autoencoders once and store those that reach the PSNR floor.

    python -m deepfake_attention.data.generators --faces runs/default-model/data/faces-train \\
        --heldout runs/default-model/data/faces-calibration --out runs/fingerprints --seeds 0,1

``--faces`` and ``--heldout`` are face folders (``faces.jsonl`` + crops, as the recipe or ``synth``
writes them) of different people. Each (up-sampling kind, seed) is trained, measured on up to
``--heldout-limit`` held-out faces and written as ``<kind>-s<seed>.safetensors`` + ``.json`` when its
mean PSNR reaches the floor; a decoder below it is reported and not stored (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np

from ..face_records import read_faces
from .nets import UPSAMPLERS
from .store import decoder_name, save_decoder
from .training import PSNR_FLOOR, TrainSettings, read_crops, train_decoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepfake_attention.data.generators", description=__doc__.splitlines()[0])
    parser.add_argument("--faces", required=True, help="face folder of the training people")
    parser.add_argument("--heldout", required=True, help="face folder of other people (the PSNR is measured there)")
    parser.add_argument("--out", required=True, help="folder for the decoders")
    parser.add_argument("--kinds", default=",".join(UPSAMPLERS), help=f"up-sampling kinds, comma-separated (default {','.join(UPSAMPLERS)})")
    parser.add_argument("--seeds", default="0,1", help="seeds per kind, comma-separated (default 0,1)")
    parser.add_argument("--steps", type=int, default=TrainSettings.steps, help=f"training steps per decoder (default {TrainSettings.steps})")
    parser.add_argument("--heldout-limit", type=int, default=64, help="held-out faces measured (a seeded sample; default 64)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in UPSAMPLERS for k in kinds):
        parser.error(f"--kinds must name some of {UPSAMPLERS}, got {args.kinds!r}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    train = read_crops([face.crop for face in read_faces(args.faces)])
    heldout_paths = [face.crop for face in read_faces(args.heldout)]
    picked = np.random.default_rng(0).permutation(len(heldout_paths))[: args.heldout_limit]
    heldout = read_crops([heldout_paths[int(k)] for k in sorted(picked)])
    settings = replace(TrainSettings(), steps=args.steps)
    failed = []
    for kind in kinds:
        for seed in seeds:
            model, result = train_decoder(train, heldout, kind, seed, settings)
            line = {"decoder": decoder_name(kind, seed), "psnr_mean": round(result.psnr_mean, 2), "psnr_min": round(result.psnr_min, 2),
                    "minutes": round(result.minutes, 2), "stored": result.psnr_mean >= PSNR_FLOOR}
            print(json.dumps(line), flush=True)
            if result.psnr_mean >= PSNR_FLOOR:
                save_decoder(model, args.out, decoder_name(kind, seed), {**result.record(), "faces": str(args.faces), "heldout": str(args.heldout)})
            else:
                failed.append(line["decoder"])
    if failed:
        print(f"below the {PSNR_FLOOR} dB floor, not stored: {', '.join(failed)} (train longer: --steps)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
