"""``evaluate``: score a labelled manifest of face crops and write ``metrics.json`` and ``report.html``.

One batched pass reads each crop once and runs the :class:`~.detector.Detector` with Grad-CAM++
(logits, attention gate and Grad-CAM++ map from one forward); everything else is derived from
what that pass collects: detection metrics, calibration, localisation against the forgery masks
(fakes only, next to the mean-mask baseline), faithfulness, detection per kind of fake
(:mod:`.fake_types`: FaceForensics++ methods, or families in ``fake/<kind>/`` folders), video-level scores and, with
``robustness=True``, the scores under every level of :data:`~.data.perturb.PERTURBATIONS`.
Rows are face crops scored as they are (resized to the checkpoint's size, no face detection).
An unreadable image or mask is listed in ``metrics.json["errors"]`` and left out, never replaced.
A manifest of whole images and videos (FaceForensics++, Celeb-DF) is evaluated with
``media=True``, which hands it to :func:`~.media.evaluate_media`; a crop manifest that lists
videos is refused with a message saying so.

The scoring pass is :mod:`.scoring`; the options are :class:`~.options.EvaluateOptions`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..data.inputs import kind_of
from ..data.manifest import ManifestRow, manifest_rows
from ..data.perturb import PERTURBATIONS, perturbation_name
from ..detector import Detector
from ..files import atomic_write_json
from ..metrics import summarize
from .fake_types import fake_type_section, media_group
from .options import EvaluateOptions
from .scoring import mask_baseline, score_calibration, score_pass
from .sections import calibration_section, causal_section, classification_section, drop_and_increase, jsonable, randomization_section, robustness_section, video_section

if TYPE_CHECKING:
    from .media import MediaEvalResult

__all__ = ["EvalResult", "EvaluateOptions", "evaluate"]

RowSource = str | Path | Sequence[ManifestRow]
UNTRAINED_NOTE = "UNTRAINED placeholder model: every score is meaningless"


@dataclass
class EvalResult:
    """What :func:`evaluate` produced: the metrics (as written to ``metrics.json``) and the files."""

    metrics: dict[str, Any]
    out_dir: Path
    metrics_path: Path
    report_path: Path
    exit_code: int
    """1 when any image or mask could not be read (see ``metrics["errors"]``), else 0."""
    untrained: bool = False


def _rows(source: RowSource, what: str, split: str | None) -> list[ManifestRow]:
    rows = manifest_rows(source, what, split)
    videos = [row.path for row in rows if kind_of(row.path) == "video"]
    if videos:
        raise ValueError(f"the {what} lists {len(videos)} video(s), e.g. {videos[0]}, but evaluate scores face crops as they are. For whole "
                         "images and videos (face detection, tracks, aggregation, media- and face-level figures) run "
                         "`deepfake-attention evaluate MANIFEST --media` (Python: evaluate(..., media=True) or evaluate_media)")
    return rows




def evaluate(manifest: RowSource, out_dir: str | Path, *, model: str | Path | Detector | None = None, calibration: RowSource | None = None,
             prior_masks: RowSource | None = None, command: str | None = None, media: bool = False, **options: Any) -> EvalResult | MediaEvalResult:
    """Evaluate a detector on labelled face crops; write ``metrics.json`` and ``report.html``.

    Args:
        manifest: a manifest CSV path or its rows (:class:`ManifestRow`; mask PNGs optional).
        out_dir: folder for ``metrics.json`` and ``report.html`` (created).
        model: a checkpoint directory or a loaded :class:`Detector` (default: the shipped model).
        calibration: rows (or a manifest) to fit the temperature on, T bounded to [0.5, 5], and
            to choose the threshold at ``target_fpr``; default: the manifest's rows of
            ``calibration_split`` when that option is set, else none.
        prior_masks: rows (or a manifest) whose fakes' masks make the mean-mask baseline
            (normally the training split); default: the evaluated fakes' own masks, labelled
            "optimistic baseline".
        command: the command line to record in ``metrics.json``.
        media: the manifest lists whole images and videos: run :func:`~.media.evaluate_media` on it
            (``options`` are then its options) and return its :class:`~.media.MediaEvalResult`.
        **options: fields of :class:`EvaluateOptions`.

    Returns an :class:`EvalResult` (a :class:`~.media.MediaEvalResult` with ``media=True``).
    Raises ``ValueError`` when nothing can be evaluated (empty selection, no readable image) and
    for a manifest that lists videos (without ``media=True``).
    """
    if media:
        if calibration is not None or prior_masks is not None:
            raise ValueError("calibration and prior_masks apply to face-crop manifests; media=True evaluates whole files without them")
        from .media import evaluate_media

        return evaluate_media(manifest, out_dir, model=model, command=command, **options)
    opts = EvaluateOptions(**options)
    started = datetime.now(timezone.utc)
    rows = _rows(manifest, "manifest", opts.split)
    if calibration is None and opts.calibration_split is not None:
        calibration = manifest
    cal_rows = None if calibration is None else _rows(calibration, "calibration set", opts.calibration_split)
    prior_rows = None if prior_masks is None else _rows(prior_masks, "prior_masks set", None)
    detector = model if isinstance(model, Detector) else Detector.load(model, device=opts.device)
    threshold = detector.threshold if opts.threshold is None else float(opts.threshold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    errors: list[dict[str, str]] = []
    notes = [] if detector.trained else [UNTRAINED_NOTE]
    got = score_pass(detector, rows, opts, threshold, errors)
    if not got.labels:
        raise ValueError(f"none of the {len(rows)} images could be read; first error: {errors[0]['path']}: {errors[0]['message']}")
    y, p, logits = np.array(got.labels), np.array(got.probs), np.array(got.logits, dtype=np.float64)
    cal = None if cal_rows is None else score_calibration(detector, cal_rows, opts, errors)
    if cal_rows is not None and (shared := {r.path for r in rows} & {r.path for r in cal_rows}):
        notes.append(f"{len(shared)} images are in both the evaluation and the calibration set; the calibrated numbers are optimistic")
    from ..version import __version__

    metrics: dict[str, Any] = {
        "schema": "deepfake-attention/evaluate/1",
        "command": command if command is not None else " ".join(sys.argv),
        "options": {**dataclasses.asdict(opts), "manifest": _describe(manifest), "calibration": _describe(calibration), "prior_masks": _describe(prior_masks)},
        "package_version": __version__,
        "model": {
            "sha256": detector.model_sha256, "trained": detector.trained, "temperature": detector.config.temperature,
            "threshold": detector.config.threshold, "size": detector.config.preprocess.size, "trunk": detector.config.model.get("trunk"),
            "package_version": detector.config.package_version,
        },
        "device": str(detector.device),
        "torch_version": torch.__version__,
        "started": started.isoformat(),
        "scores": f"P(fake) = softmax(logits / T)[fake] with the checkpoint's T = {detector.config.temperature:g}; label fake iff P(fake) >= threshold",
        "threshold": threshold,
        "counts": {
            "rows": len(rows), "evaluated": int(y.size), "errors": len(errors), "real": int((y == 0).sum()), "fake": int((y == 1).sum()),
            "fake_with_mask": len(got.masked), "fake_without_mask": got.fakes_without_mask, "calibration": 0 if cal is None else int(cal[0].size),
        },
        "notes": notes,
        "classification": classification_section(y, p, threshold, target_fpr=opts.target_fpr, bootstrap=opts.bootstrap, seed=opts.seed,
                                                  calibration=None if cal is None else (cal[0], cal[2])),
        "calibration": calibration_section(y, logits, detector.config.temperature, threshold, None if cal is None else (cal[0], cal[1]),
                                           fit=opts.calibration_fit),
        "focus": {key: summarize(values).to_dict() for key, values in sorted(got.entropy.items())},
        "localization": None,
        "faithfulness": {**{name: drop_and_increase(got.faith_full, values, threshold) for name, values in got.faith_expl.items()}, "causal": None, "randomization": None},
        "fake_types": fake_type_section([media_group(rows[i]) for i in got.index], y, p, threshold, bootstrap=opts.bootstrap, seed=opts.seed),
        "video": video_section([rows[i].video_id for i in got.index], [rows[i].frame for i in got.index], y, p, threshold),
        "robustness": None,
    }
    if got.masked:
        base = mask_baseline(got, rows, detector.config.preprocess.size, prior_rows, errors, opts.batch_size)
        metrics["localization"] = {
            "count": len(got.masked), "baseline": base["kind"][0], "baseline_description": base["kind"][1], "baseline_masks": base["masks"],
            **{name: {target: got.loc.report(name, target) for target in ("mask", "boundary")} for name in ("attention", "gradcampp")},
        }
    subset = sorted(got.subset, key=lambda t: t[1])
    if subset:
        crops = np.stack([item.crop for _, _, item in subset])
        maps = {name: np.stack([getattr(item, name) for _, _, item in subset]).astype(np.float64) for name in ("gradcampp", "attention")}
        metrics["faithfulness"]["causal"] = causal_section(detector, [i for _, i, _ in subset], crops, maps, seed=opts.seed,
                                                           batch_size=opts.batch_size, progress=opts.progress)
        metrics["faithfulness"]["randomization"] = randomization_section(detector, crops, maps, seed=opts.seed, batch_size=opts.batch_size)
    if opts.robustness:
        perturbed = {perturbation_name(k, lv): (k, lv, np.array(got.perturbed[perturbation_name(k, lv)])) for k, levels in PERTURBATIONS.items() for lv in levels}
        metrics["robustness"] = robustness_section(y, p, perturbed, threshold)
    metrics["errors"] = errors
    metrics["counts"]["errors"] = len(errors)
    metrics["finished"] = datetime.now(timezone.utc).isoformat()
    metrics = jsonable(metrics)
    atomic_write_json(out_dir / "metrics.json", metrics)
    from .report import write_eval_report

    examples = {group: [item for _, _, item in sorted(heap, reverse=True)] for group, heap in got.examples.items()}
    report = write_eval_report(metrics, examples, out_dir / "report.html")
    return EvalResult(metrics, out_dir, out_dir / "metrics.json", report, 1 if errors else 0, untrained=not detector.trained)


def _describe(source: RowSource | None) -> str | None:
    if source is None or isinstance(source, (str, Path)):
        return None if source is None else str(source)
    return f"{len(source)} rows"
