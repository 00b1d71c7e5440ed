"""The scoring pass of :func:`~.run.evaluate`: each crop read once, scored with Grad-CAM++, and
what the sections need kept (per-sample scores, localisation sums, bounded heaps of examples).

Unreadable images and masks are appended to ``errors`` and left out, never replaced.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.datasets import read_mask
from ..data.manifest import ManifestRow
from ..data.media import MediaError, read_image
from ..data.perturb import PERTURBATIONS, apply_perturbation, perturbation_name
from ..data.transforms import FAKE_INDEX
from ..detector import Detector
from ..metrics import boundary_map, explanation_images, normalized_entropy
from .options import EvaluateOptions
from .sections import Example, LocalizationScores, MaskMean, batches, predict_probs


def _subset_key(seed: int, index: int) -> float:
    """The uniform key that picks the faithfulness subset: the ``limit`` smallest keys win
    (order- and process-independent: a function of (seed, index) only)."""
    return float(np.random.default_rng(np.random.SeedSequence([seed, 1, index])).random())


@dataclass
class Collected:
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


def score_pass(detector: Detector, rows: list[ManifestRow], opts: EvaluateOptions, threshold: float, errors: list[dict[str, str]]) -> Collected:
    size = detector.config.preprocess.size
    got = Collected()
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


def _collect(got: Collected, detector: Detector, images: list[np.ndarray], masks: list[np.ndarray | None], kept: list[tuple[int, ManifestRow]],
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


def mask_baseline(got: Collected, rows: list[ManifestRow], size: int, prior_rows: list[ManifestRow] | None, errors: list[dict[str, str]], batch_size: int) -> dict[str, Any]:
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


def score_calibration(detector: Detector, rows: list[ManifestRow], opts: EvaluateOptions, errors: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
