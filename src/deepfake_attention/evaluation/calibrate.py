"""``calibrate``: fit a checkpoint's temperature (bounded) and pick its threshold at a target
false-positive rate on a labelled calibration manifest; rewrite its ``config.json`` only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import CONFIG_FILE, read_config
from ..data.manifest import ManifestRow, read_manifest
from ..data.media import read_image
from ..detector import Detector
from ..files import atomic_write_json
from ..metrics.calibration import apply_temperature, expected_calibration_error, fit_temperature
from ..metrics.classification import threshold_at_fpr


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` chose and measured on the calibration set."""

    temperature: float
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


def score_rows(detector: Detector, rows: list[ManifestRow], *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, 2] of the rows' face crops (read as they are, no face detection) and labels [N]."""
    logits = []
    for begin in range(0, len(rows), batch_size):
        crops = [read_image(row.path) for row in rows[begin : begin + batch_size]]
        logits += [p.logits for p in detector.predict(crops, cam=False)]
    return np.asarray(logits, dtype=np.float64), np.asarray([int(row.is_fake) for row in rows])


def calibrate(checkpoint: str | Path, manifest: str | Path, *, target_fpr: float = 0.05, bounds: tuple[float, float] = (0.5, 5.0), device: str = "auto",
              flip_average: bool | None = None) -> Calibration:
    """Fit T in ``bounds`` (NLL), set the threshold reaching ``target_fpr`` on the calibrated
    P(fake) of the manifest's reals, and write both into the checkpoint's ``config.json``.

    ``flip_average``: score with (True) or without (False) each crop's mirror, and write that into
    the checkpoint's ``preprocess.flip_average`` with the fit; None keeps the checkpoint's setting."""
    checkpoint = Path(checkpoint)
    rows = read_manifest(manifest)
    detector = Detector.load(checkpoint, device=device)
    if flip_average is not None:
        detector.set_preprocess(flip_average=flip_average)
    logits, labels = score_rows(detector, rows)
    fit = fit_temperature(logits, labels, bounds=bounds)
    before = apply_temperature(logits, 1.0)
    after = apply_temperature(logits, fit.temperature)
    point = threshold_at_fpr(labels, after, target_fpr)
    threshold = float(min(1.0, max(0.0, point.threshold)))
    result = Calibration(
        temperature=float(fit.temperature), threshold=threshold, target_fpr=target_fpr, achieved_fpr=float(point.fpr), achieved_tpr=float(point.tpr),
        nll_before=float(fit.nll_before), nll_after=float(fit.nll_after), ece_before=expected_calibration_error(labels, before),
        ece_after=expected_calibration_error(labels, after), at_bound=bool(fit.at_bound), samples=len(rows),
    )
    config = read_config(checkpoint)
    info = dict(config.info, calibration={**dataclasses.asdict(result), "manifest": Path(manifest).name})
    updated = dataclasses.replace(config, temperature=result.temperature, threshold=result.threshold, info=info, preprocess=detector.config.preprocess)
    atomic_write_json(checkpoint / CONFIG_FILE, updated.to_json())
    return result
