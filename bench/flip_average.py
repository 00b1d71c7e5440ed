"""Flip averaging at test time: does averaging each face's logits with its mirror image's rank better?

Scores the recipe's test units (one score per person per file) of a model with its checkpoint's
``preprocess.flip_average`` off and on, at the model's own threshold (whichever setting it was
calibrated with), against the self-blends and the other family. The recipe's ``--weights`` run
measures the same with the threshold and temperature fitted again (the shipped model's card).
The cost is timed with ``bench/_timing.py`` on the first ``--time-crops`` crops of the self-blend
set, both settings interleaved in each round (crops read and detected faces cut included).

    python bench/flip_average.py --prepared runs/default-model/data            # the shipped model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deepfake_attention import Detector
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.evaluation.calibrate import score_rows
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.run import read_prepared
from deepfake_attention.recipe.units import score_units, unit_report

from _timing import Verdict, add_arguments, legend, load_line, measure
from ablation import paired_difference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=Path("runs/default-model/data"), help="a recipe's prepared data folder")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="replicates of the paired AUC difference (default 2000)")
    parser.add_argument("--time-crops", type=int, default=128, help="crops scored per timed call (default 128)")
    add_arguments(parser, repeats=5, warmup=1)
    args = parser.parse_args()
    paths = read_prepared(args.prepared)["paths"]
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    detectors = {mirrored: Detector.load(args.model) for mirrored in (False, True)}
    for mirrored, detector in detectors.items():
        detector.set_preprocess(flip_average=mirrored)  # temperature and threshold stay those the checkpoint was fitted with
    print("| scoring | test | AUC | TPR | FPR |\n|---|---|---|---|---|")
    units: dict[tuple[bool, str], dict[str, np.ndarray]] = {}
    for mirrored, detector in detectors.items():
        for name in ("test_sbi", "test_other"):
            scores = score_units(detector, paths[name], faces)
            units[mirrored, name] = {"y": np.array([u.fake for u in scores], dtype=int), "p": np.array([u.prob for u in scores])}
            r = unit_report(scores, detector.threshold)["overall"]
            print(f"| {'with mirror' if mirrored else 'one pass'} | {name} | {r['auc']:.3f} | {r['tpr']:.3f} | {r['fpr']:.3f} |")
    print("\n| test | AUC with mirror - one pass [paired 95% CI] |\n|---|---|")
    for name in ("test_sbi", "test_other"):
        diff = paired_difference([units[True, name]], [units[False, name]], "auc", args.bootstrap, seed=0)
        print(f"| {name} | {diff['estimate']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] |")
    rows = read_manifest(paths["test_sbi"])[: args.time_crops]
    timings = measure({"one pass": lambda: score_rows(detectors[False], rows),
                       "with mirror": lambda: score_rows(detectors[True], rows)},
                      repeats=args.repeats, warmup=args.warmup_rounds)
    print(f"\n{legend(args.repeats, args.warmup_rounds)}")
    for name in ("one pass", "with mirror"):
        print(f"scoring {len(rows)} crops, {name}: {timings[name].show()} s ({timings.rate(name, len(rows)).show(1)} crops/s)")
    verdict = Verdict()
    ratio = verdict.ratio("with mirror / one pass", timings.ratio("with mirror", "one pass"), at_least=1.0, why="the mirror adds work")
    print(f"scoring time with the mirror / one pass: {ratio.show_ratio()}")
    return verdict.report(args.strict, load=load_line("after the run"))


if __name__ == "__main__":
    sys.exit(main())
