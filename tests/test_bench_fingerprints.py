"""bench/fingerprints.py's bookkeeping: a run resumed in a later session keeps its training minutes."""

from __future__ import annotations

import csv
from pathlib import Path

from .conftest import load_bench

fingerprints = load_bench("fingerprints")


def _log(path: Path, seconds: list[float]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss", "seconds"])
        writer.writeheader()
        for step, value in enumerate(seconds, start=1):
            writer.writerow({"step": step * 10, "loss": 0.5, "seconds": value})
    return path


def test_training_minutes_of_one_session(tmp_path: Path) -> None:
    assert fingerprints._train_minutes(_log(tmp_path / "log.csv", [30.0, 60.0, 90.0])) == 1.5


def test_training_minutes_add_up_over_a_resume(tmp_path: Path) -> None:
    # the resumed session's clock starts again at 0: 120 s before the interruption, 240 s after
    assert fingerprints._train_minutes(_log(tmp_path / "log.csv", [60.0, 120.0, 80.0, 160.0, 240.0])) == 6.0


def test_no_log_no_minutes(tmp_path: Path) -> None:
    assert fingerprints._train_minutes(tmp_path / "missing.csv") is None
