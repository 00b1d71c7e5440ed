"""The options of :func:`~.run.evaluate` on face crops, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..data.manifest import SPLITS

CalibrationFit = Literal["temperature", "affine"]
"""What a calibration fits: a temperature T, or T and an offset (``P(fake) = sigmoid(gap / T + offset)``)."""
CALIBRATION_FITS: tuple[str, ...] = get_args(CalibrationFit)


@dataclass(frozen=True)
class EvaluateOptions:
    """The knobs of :func:`~.run.evaluate`, validated on construction."""

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
    calibration_fit: CalibrationFit = "temperature"
    """What is fitted on the calibration rows: ``temperature`` (T), or ``affine`` (T and an offset,
    ``P(fake) = sigmoid(gap / T + offset)``, as ``calibrate --fit affine``)."""
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
        if self.calibration_fit not in CALIBRATION_FITS:
            raise ValueError(f"calibration_fit must be one of {', '.join(CALIBRATION_FITS)}, got {self.calibration_fit!r}")
        for name in ("split", "calibration_split"):
            value = getattr(self, name)
            if value is not None and value not in (*SPLITS, ""):
                raise ValueError(f"{name} must be one of {', '.join(SPLITS)} or '' (unassigned), got {value!r}")
