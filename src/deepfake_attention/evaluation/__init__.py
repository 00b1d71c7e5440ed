"""The evaluation stage (``evaluate`` and ``calibrate``): a labelled manifest and a checkpoint in, figures out.

Takes a manifest of face crops (real / fake, optional masks) and a model; gives ``metrics.json``
(detection, calibration, localisation against the masks and a prior baseline, faithfulness,
robustness) and a self-contained ``report.html``; ``calibrate`` writes the temperature and the
threshold at a target false-positive rate back into the checkpoint.

A manifest of whole images and videos (FaceForensics++, Celeb-DF) goes through ``analyze`` instead
(``evaluate(..., media=True)`` or :func:`evaluate_media`): media-level and face-level AUC, TPR and
FPR overall, per manipulation type and per source of the reals.

- ``run``: :func:`evaluate`, assembling the sections; ``scoring``: its one pass over the crops; ``options``: its options;
- ``media``: :func:`evaluate_media`; ``media_report``: its HTML report and console summary;
- ``sections``: the metric sections computed from the scored examples;
- ``report``: the HTML report; ``calibrate``: :func:`calibrate`.
"""

from .calibrate import calibrate
from .media import evaluate_media
from .run import evaluate

__all__ = ["calibrate", "evaluate", "evaluate_media"]
