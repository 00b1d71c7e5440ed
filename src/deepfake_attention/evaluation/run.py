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
"""

from __future__ import annotations

import dataclasses
import heapq
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.datasets import read_mask
from ..data.inputs import kind_of
from ..data.manifest import SPLITS, ManifestRow, manifest_rows
from ..data.media import MediaError, read_image
from ..data.perturb import PERTURBATIONS, apply_perturbation, perturbation_name
from ..data.transforms import FAKE_INDEX
from ..detector import Detector
from ..files import atomic_write_json
from ..metrics import boundary_map, explanation_images, normalized_entropy, summarize
from .fake_types import fake_type_section, media_group
from .sections import (
    Example,
    LocalizationScores,
    MaskMean,
    batches,
    calibration_section,
    causal_section,
    classification_section,
    drop_and_increase,
    jsonable,
    predict_probs,
    randomization_section,
    robustness_section,
    video_section,
)

if TYPE_CHECKING:
    from .media import MediaEvalResult

RowSource = str | Path | Sequence[ManifestRow]
UNTRAINED_NOTE = "UNTRAINED placeholder model: every score is meaningless"


@dataclass(frozen=True)
class EvaluateOptions:
    """The knobs of :func:`evaluate`, validated on construction."""

    threshold: float | None = None
    """P(fake) threshold for label=fake (default: the checkpoint's)."""
    target_fpr: float = 0.05
    """Also report the threshold reaching this false-positive rate."""
    robustness: bool = False
    """Re-score the set under every level of :data:`PERTURBATIONS`."""
    faithfulness_limit: int = 64
    """Fakes used for deletion/insertion and the randomisation check (0: skip both)."""
    bootstrap: int = 200
    """Stratified bootstrap replicates for the AUC's 95% CI (0: none)."""
    top_k: int = 4
    """Examples per group in the report's grid."""
    split: str | None = None
    """Evaluate only the rows of this split (train, val, test; "" = unassigned)."""
    calibration_split: str | None = None
    """Filter the calibration rows to this split (default calibration: the manifest's rows of it)."""
    batch_size: int = 32
    device: str = "auto"
    seed: int = 0
    progress: bool | None = None
    """None: a progress bar only when stderr is a terminal."""

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.target_fpr <= 1.0:
            raise ValueError(f"target_fpr must be in [0, 1], got {self.target_fpr}")
        for name in ("faithfulness_limit", "bootstrap", "top_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("split", "calibration_split"):
            value = getattr(self, name)
            if value is not None and value not in (*SPLITS, ""):
                raise ValueError(f"{name} must be one of {', '.join(SPLITS)} or '' (unassigned), got {value!r}")


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


def _subset_key(seed: int, index: int) -> float:
    """The uniform key that picks the faithfulness subset: the ``limit`` smallest keys win
    (order- and process-independent: a function of (seed, index) only)."""
    return float(np.random.default_rng(np.random.SeedSequence([seed, 1, index])).random())


@dataclass
class _Collected:
    """Everything the scoring pass keeps: per-sample scores, bounded heaps of crops and maps."""

    index: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    logits: list[tuple[float, float]] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    loc: LocalizationScores = field(default_factory=LocalizationScores)
    masked: list[int] = field(default_factory=list)
    own_masks: MaskMean = field(default_factory=MaskMean)
    fakes_without_mask: int = 0
    entropy: dict[str, list[float]] = field(default_factory=dict)
    faith_full: list[float] = field(default_factory=list)
    faith_expl: dict[str, list[float]] = field(default_factory=lambda: {"gradcampp": [], "attention": []})
    subset: list[tuple[float, int, Example]] = field(default_factory=list)
    examples: dict[str, list[tuple[float, int, Example]]] = field(default_factory=dict)
    perturbed: dict[str, list[float]] = field(default_factory=dict)


def _keep_top(heap: list, key: float, index: int, item: Any, limit: int) -> None:
    """Keep the ``limit`` items with the largest ``(key, index)`` in a min-heap."""
    if len(heap) < limit:
        heapq.heappush(heap, (key, index, item))
    elif limit > 0:
        heapq.heappushpop(heap, (key, index, item))


def _score_pass(detector: Detector, rows: list[ManifestRow], opts: EvaluateOptions, threshold: float, errors: list[dict[str, str]]) -> _Collected:
    size = detector.config.preprocess.size
    got = _Collected()
    bar = tqdm(total=len(rows), desc="evaluate", unit="crop", disable=None if opts.progress is None else not opts.progress)
    for chunk in batches(list(enumerate(rows)), opts.batch_size):
        images, masks, kept = [], [], []
        for index, row in chunk:
            try:
                image = read_image(row.path)
            except MediaError as error:
                errors.append({"path": row.path, "column": "path", "split": "evaluation", "message": str(error)})
                continue
            mask = None
            if row.is_fake and row.mask:
                try:
                    mask = read_mask(row.mask, size, image.shape[:2])
                except MediaError as error:
                    errors.append({"path": row.mask, "column": "mask", "split": "evaluation", "message": f"{error} (the image is scored, but not used for localisation)"})
            images.append(image)
            masks.append(mask)
            kept.append((index, row))
        bar.update(len(chunk))
        if images:
            _collect(got, detector, images, masks, kept, opts, threshold)
    bar.close()
    return got


def _collect(got: _Collected, detector: Detector, images: list[np.ndarray], masks: list[np.ndarray | None], kept: list[tuple[int, ManifestRow]],
             opts: EvaluateOptions, threshold: float) -> None:
    preds = detector.predict(images, cam=True)
    labels = np.array([int(row.is_fake) for _, row in kept])
    probs = np.array([p.prob_fake for p in preds])
    crops = np.stack([p.crop for p in preds])
    maps = {"attention": np.stack([p.attention for p in preds]).astype(np.float64), "gradcampp": np.stack([p.gradcampp for p in preds]).astype(np.float64)}
    got.index += [index for index, _ in kept]
    got.labels += labels.tolist()
    got.logits += [p.logits for p in preds]
    got.probs += probs.tolist()
    for name, values in maps.items():
        for label, entropy in zip(labels, np.atleast_1d(normalized_entropy(values))):
            got.entropy.setdefault(f"{name}/{'fake' if label == FAKE_INDEX else 'real'}", []).append(float(entropy))
    # localisation: fakes with a readable mask
    with_mask = [k for k, m in enumerate(masks) if m is not None]
    got.fakes_without_mask += int(sum(1 for k, m in enumerate(masks) if m is None and labels[k] == FAKE_INDEX))
    if with_mask:
        gray = np.stack([masks[k] for k in with_mask])
        soft = gray / 255.0
        edge = boundary_map(soft).astype(np.float64)
        for name, values in maps.items():
            got.loc.add(name, "mask", values[with_mask], soft)
            got.loc.add(name, "boundary", values[with_mask], edge)
        got.masked += [kept[k][0] for k in with_mask]
        got.own_masks.add(gray)
    # Average Drop / Increase in Confidence: correctly classified fakes, image x map in pixel space
    correct = np.flatnonzero((labels == FAKE_INDEX) & (probs >= threshold))
    if correct.size:
        got.faith_full += probs[correct].tolist()
        for name, values in maps.items():
            got.faith_expl[name] += predict_probs(detector, explanation_images(crops[correct], values[correct]), opts.batch_size).tolist()
    for k, ((index, row), pred) in enumerate(zip(kept, preds)):
        example = Example(row.path, int(labels[k]), pred.prob_fake, pred.crop, pred.attention, pred.gradcampp)
        if labels[k] == FAKE_INDEX:
            _keep_top(got.subset, -_subset_key(opts.seed, index), index, example, opts.faithfulness_limit)
        group = "fake" if labels[k] == FAKE_INDEX else "real"
        _keep_top(got.examples.setdefault(f"{group}/high", []), pred.prob_fake, index, example, opts.top_k)
        _keep_top(got.examples.setdefault(f"{group}/low", []), -pred.prob_fake, -index, example, opts.top_k)
    if opts.robustness:
        for kind, levels in PERTURBATIONS.items():
            for level in levels:
                moved = [apply_perturbation(image, kind, level, seed=opts.seed, index=index) for image, (index, _) in zip(images, kept)]
                got.perturbed.setdefault(perturbation_name(kind, level), []).extend(predict_probs(detector, moved, opts.batch_size).tolist())


def _baseline(got: _Collected, rows: list[ManifestRow], size: int, prior_rows: list[ManifestRow] | None, errors: list[dict[str, str]], batch_size: int) -> dict[str, Any]:
    """Score the mean-mask prior (and the mean boundary) against each localised fake's mask."""
    if prior_rows is None:
        mean, kind = got.own_masks, ("optimistic baseline", "the mean mask of the evaluated fakes themselves")
    else:
        mean, kind = MaskMean(), ("prior baseline", "the mean mask of the given prior_masks fakes (normally the training split)")
        for row in prior_rows:
            if row.is_fake and row.mask:
                try:
                    mean.add(read_mask(row.mask, size))
                except MediaError as error:
                    errors.append({"path": row.mask, "column": "mask", "split": "prior", "message": str(error)})
        if mean.count == 0:
            raise ValueError("prior_masks has no fake row with a readable mask; give the training manifest (its fakes' masks make the baseline)")
    prior, prior_edge = mean.maps()
    for chunk in batches(got.masked, batch_size):
        soft = np.stack([read_mask(rows[i].mask, size) for i in chunk]) / 255.0
        got.loc.add("baseline", "mask", prior, soft)
        got.loc.add("baseline", "boundary", prior_edge, boundary_map(soft).astype(np.float64))
    return {"kind": kind, "masks": mean.count}


def _score_split(detector: Detector, rows: list[ManifestRow], opts: EvaluateOptions, errors: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, logits, P(fake)) of the calibration rows; unreadable ones are reported and left out."""
    labels, logits, probs = [], [], []
    for chunk in batches(rows, opts.batch_size):
        images = []
        for row in chunk:
            try:
                images.append(read_image(row.path))
                labels.append(int(row.is_fake))
            except MediaError as error:
                errors.append({"path": row.path, "column": "path", "split": "calibration", "message": str(error)})
        for pred in detector.predict(images, cam=False):
            logits.append(pred.logits)
            probs.append(pred.prob_fake)
    if not labels:
        raise ValueError("no calibration image could be read; see the errors above or drop the calibration split")
    return np.array(labels), np.array(logits, dtype=np.float64), np.array(probs)


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
    got = _score_pass(detector, rows, opts, threshold, errors)
    if not got.labels:
        raise ValueError(f"none of the {len(rows)} images could be read; first error: {errors[0]['path']}: {errors[0]['message']}")
    y, p, logits = np.array(got.labels), np.array(got.probs), np.array(got.logits, dtype=np.float64)
    cal = None if cal_rows is None else _score_split(detector, cal_rows, opts, errors)
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
        "calibration": calibration_section(y, logits, detector.config.temperature, threshold, None if cal is None else (cal[0], cal[1])),
        "focus": {key: summarize(values).to_dict() for key, values in sorted(got.entropy.items())},
        "localization": None,
        "faithfulness": {**{name: drop_and_increase(got.faith_full, values, threshold) for name, values in got.faith_expl.items()}, "causal": None, "randomization": None},
        "fake_types": fake_type_section([media_group(rows[i]) for i in got.index], y, p, threshold, bootstrap=opts.bootstrap, seed=opts.seed),
        "video": video_section([rows[i].video_id for i in got.index], [rows[i].frame for i in got.index], y, p, threshold),
        "robustness": None,
    }
    if got.masked:
        base = _baseline(got, rows, detector.config.preprocess.size, prior_rows, errors, opts.batch_size)
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
