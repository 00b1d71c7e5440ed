"""``calibrate``: fit a checkpoint's temperature (bounded), or temperature and offset, and pick its
threshold at a target false-positive rate on a labelled calibration manifest.

A temperature fit rewrites ``config.json`` only. An affine fit (``fit="affine"``,
``P(fake) = sigmoid(gap / T + offset)``) folds the offset into the classifier's fake-logit bias
(:func:`fold_logit_offset`), so that ``softmax(logits / T)[fake]`` stays the checkpoint's P(fake)
everywhere (analyze, export, the service) and rewrites ``model.safetensors`` with its SHA-256."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CONFIG_FILE, CheckpointConfig, load_checkpoint, read_config, save_checkpoint
from ..data.manifest import ManifestRow, read_manifest
from ..data.media import read_image
from ..data.transforms import FAKE_INDEX, Preprocess
from ..detector import Detector
from ..files import atomic_write_json
from ..metrics.calibration import apply_affine, apply_temperature, expected_calibration_error, fit_affine, fit_temperature
from ..metrics.classification import threshold_at_fpr
from .options import CALIBRATION_FITS, CalibrationFit


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` chose and measured on the calibration set."""

    temperature: float
    offset: float
    """Added to the logit gap after the temperature (0 for a temperature fit); folded into the weights."""
    fit: str
    threshold: float
    target_fpr: float
    achieved_fpr: float
    achieved_tpr: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    at_bound: bool
    samples: int
    unit: str = "crop"
    """What ``samples`` counts and the fit was taken over: ``crop`` (each row), or the recipe's ``person per file``."""


def score_rows(detector: Detector, rows: list[ManifestRow], *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, 2] of the rows' face crops (read as they are, no face detection) and labels [N]."""
    logits = []
    for begin in range(0, len(rows), batch_size):
        crops = [read_image(row.path) for row in rows[begin : begin + batch_size]]
        logits += [p.logits for p in detector.predict(crops, cam=False)]
    return np.asarray(logits, dtype=np.float64), np.asarray([int(row.is_fake) for row in rows])


def fold_logit_offset(checkpoint: str | Path, offset: float, temperature: float) -> CheckpointConfig:
    """Add ``offset * temperature`` to the bias of the classifier's fake logit and save the weights
    again, so that ``softmax(logits / temperature)[fake] = sigmoid(gap / temperature + offset)`` for
    the gap the weights gave before. Grad-CAM++ maps are unchanged (a constant has no gradient);
    ``config.json`` keeps everything but the new weights' SHA-256."""
    model, config = load_checkpoint(checkpoint)
    with torch.no_grad():
        model.classifier[-1].bias[FAKE_INDEX] += float(offset) * float(temperature)
    return save_checkpoint(model, checkpoint, config)


def calibrate(checkpoint: str | Path, manifest: str | Path, *, target_fpr: float = 0.05, bounds: tuple[float, float] = (0.5, 5.0), device: str = "auto",
              flip_average: bool | None = None, fit: CalibrationFit = "temperature") -> Calibration:
    """Fit T in ``bounds`` (NLL), and with ``fit="affine"`` an offset too, set the threshold reaching
    ``target_fpr`` on the calibrated P(fake) of the manifest's reals, and write them into the checkpoint.

    ``flip_average``: score with (True) or without (False) each crop's mirror, and write that into
    the checkpoint's ``preprocess.flip_average`` with the fit; None keeps the checkpoint's setting."""
    if fit not in CALIBRATION_FITS:
        raise ValueError(f"fit must be one of {', '.join(CALIBRATION_FITS)}, got {fit!r}")
    checkpoint = Path(checkpoint)
    rows = read_manifest(manifest)
    detector = Detector.load(checkpoint, device=device)
    if flip_average is not None:
        detector.set_preprocess(flip_average=flip_average)
    logits, labels = score_rows(detector, rows)
    if fit == "affine":
        found = fit_affine(logits, labels, bounds=bounds)
        after = apply_affine(logits, found.temperature, found.offset)
    else:
        found = fit_temperature(logits, labels, bounds=bounds)
        after = apply_temperature(logits, found.temperature)
    offset = float(getattr(found, "offset", 0.0))
    point = threshold_at_fpr(labels, after, target_fpr)
    threshold = float(min(1.0, max(0.0, point.threshold)))
    result = Calibration(
        temperature=float(found.temperature), offset=offset, fit=fit, threshold=threshold, target_fpr=target_fpr, achieved_fpr=float(point.fpr),
        achieved_tpr=float(point.tpr), nll_before=float(found.nll_before), nll_after=float(found.nll_after),
        ece_before=expected_calibration_error(labels, apply_temperature(logits, 1.0)), ece_after=expected_calibration_error(labels, after),
        at_bound=bool(found.at_bound), samples=len(rows),
    )
    write_calibration(checkpoint, result, preprocess=detector.config.preprocess, manifest=Path(manifest).name)
    return result


def write_calibration(checkpoint: str | Path, result: Calibration, *, preprocess: Preprocess, **record: Any) -> CheckpointConfig:
    """Fold ``result``'s offset (if any) into the weights, then write its temperature and threshold,
    ``preprocess`` and ``info.calibration`` (the result and ``record``) into ``config.json``."""
    checkpoint = Path(checkpoint)
    if result.offset:
        fold_logit_offset(checkpoint, result.offset, result.temperature)
    config = read_config(checkpoint)
    info = dict(config.info, calibration={**dataclasses.asdict(result), **record})
    updated = dataclasses.replace(config, temperature=result.temperature, threshold=result.threshold, info=info, preprocess=preprocess)
    atomic_write_json(checkpoint / CONFIG_FILE, updated.to_json())
    return updated
