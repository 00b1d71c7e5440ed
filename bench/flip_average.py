"""Flip averaging at test time: does averaging each face's logits with its mirror image's rank better?

Scores the recipe's test units (one score per person per file) of a model as it is and with the
logits of each crop averaged with those of its horizontal mirror, at the model's own threshold
(set without the mirror), against the self-blends and the other family. Not an option of the
detector (yet): this measures whether it would pay, at twice the forward passes.

    python bench/flip_average.py --prepared runs/default-model/data            # the shipped model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from deepfake_attention import Detector
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.run import read_prepared
from deepfake_attention.recipe.units import score_units, unit_report


def with_mirror(detector: Detector) -> None:
    """Make ``detector.predict`` return, per crop, the mean logits of the crop and its mirror (no maps)."""
    plain = detector.predict

    def predict(crops: Sequence[np.ndarray], *, cam: bool = True) -> list:
        straight = plain(crops, cam=False)
        mirrored = plain([np.ascontiguousarray(c[:, ::-1]) for c in crops], cam=False)
        return [dataclasses.replace(a, logits=tuple((np.asarray(a.logits) + np.asarray(b.logits)) / 2)) for a, b in zip(straight, mirrored)]

    detector.predict = predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=Path("runs/default-model/data"), help="a recipe's prepared data folder")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    args = parser.parse_args()
    paths = read_prepared(args.prepared)["paths"]
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    print("| scoring | test | AUC | TPR | FPR |\n|---|---|---|---|---|")
    for mirrored in (False, True):
        detector = Detector.load(args.model)
        if mirrored:
            with_mirror(detector)
        for name in ("test_sbi", "test_other"):
            r = unit_report(score_units(detector, paths[name], faces), detector.threshold)["overall"]
            print(f"| {'with mirror' if mirrored else 'as is'} | {name} | {r['auc']:.3f} | {r['tpr']:.3f} | {r['fpr']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
