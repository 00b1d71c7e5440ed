"""Two checkpoints on the recipe's test units, side by side: is a candidate default model better?

Scores a candidate (``--model``) and a base (``--base``, default the shipped model) on the same
test units of a recipe's prepared folder (one score per person per file, as the card counts them),
each at its own threshold and with its own preprocessing (``--flip-average``: the candidate scores its mirror too). The first table gives FPR, TPR, AUC and
the 1:1 ECE of each against the self-blends and the other family, and the FPR of each source group;
the second the candidate minus the base, with paired bootstrap 95% CIs (the units resampled within
each class, the same units for both models in each replicate).

    python bench/compare_models.py --prepared runs/default-model/data --model runs/candidate/train/model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deepfake_attention import Detector
from deepfake_attention.metrics import auc_roc
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.run import read_prepared
from deepfake_attention.recipe.units import score_units, unit_report

from unit_calibration import balanced_ece, score_difference

SETS = ("test_sbi", "test_other")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=Path("runs/default-model/data"), help="a recipe's prepared data folder")
    parser.add_argument("--model", required=True, help="the candidate checkpoint folder")
    parser.add_argument("--base", default=None, help="the checkpoint to compare with (default: the shipped model)")
    parser.add_argument("--flip-average", action="store_true",
                        help="score the candidate with its mirror too (a training run's best/ weights are saved before the recipe sets it)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="replicates of each paired difference (default 2000)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    paths = read_prepared(args.prepared)["paths"]
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    detectors = {"candidate": Detector.load(args.model), "base": Detector.load(args.base)}
    if args.flip_average:
        detectors["candidate"].set_preprocess(flip_average=True)
    scores: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    reports: dict[str, dict[str, dict]] = {}
    for arm, detector in detectors.items():
        for name in SETS:
            units = score_units(detector, paths[name], faces)
            scores[arm, name] = np.array([u.fake for u in units], dtype=int), np.array([u.prob for u in units])
            reports.setdefault(arm, {})[name] = unit_report(units, detector.threshold)
    groups = sorted(reports["base"]["test_sbi"]["groups_checked"])
    print(f"| model | sha256 | threshold | FPR | TPR | AUC sbi | AUC other | ECE 1:1 | FPR {' / '.join(groups)} |\n|---|---|---|---|---|---|---|---|---|")
    for arm, detector in detectors.items():
        sbi, other = reports[arm]["test_sbi"], reports[arm]["test_other"]
        o = sbi["overall"]
        per_group = " / ".join(f"{sbi['groups'][g]['fpr']:.3f}" for g in groups)
        print(f"| {arm} | `{detector.model_sha256[:8]}` | {detector.threshold:.4f} | {o['fpr']:.3f} | {o['tpr']:.3f} | {o['auc']:.3f} | "
              f"{other['overall']['auc']:.3f} | {o['ece_balanced']:.3f} | {per_group} |")
    print("\n| test | AUC, candidate - base [paired 95% CI] | ECE 1:1, candidate - base |\n|---|---|---|")
    differences = {}
    for name in SETS:
        y, ours = scores["candidate", name]
        y_base, base = scores["base", name]
        if not np.array_equal(y, y_base):
            raise ValueError(f"{name}: the two models were scored on different units")
        differences[name] = {label: score_difference(score, y, ours, base, args.bootstrap, seed=0)
                             for label, score in (("auc", auc_roc), ("ece_balanced", balanced_ece))}
        cells = [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in differences[name].values()]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"models": {arm: d.model_sha256 for arm, d in detectors.items()}, "reports": reports,
                                        "differences": differences}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
