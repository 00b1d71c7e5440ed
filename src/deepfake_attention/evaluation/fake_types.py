"""Detection per kind of fake: each kind's fakes against every real of the evaluated set.

A row's kind (:func:`media_group`) is the ``video_id`` prefix before ``/`` (the manipulation type
that FaceForensics++ and Celeb-DF manifests write: ``Deepfakes/004_982``), else the folder right
under the file's nearest ``fake/`` (``real/``) folder (``fake/fingerprint/x.png``), else the label
itself. ``evaluate --media`` groups whole files by it; ``evaluate`` on face crops reports it in
``metrics.json["fake_types"]`` whenever some fake has a kind, so that one manifest holding several
families (self-blends, another blend family, generator fingerprints) is measured family by family.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import ManifestRow
from ..metrics import auc_roc, bootstrap_ci


def media_group(row: ManifestRow) -> str:
    """The manipulation type of a fake, or the source of a real: the ``video_id`` prefix before ``/``;
    else the folder right under the file's nearest ``fake/`` (``real/``) folder; else the label."""
    if "/" in row.video_id:
        return row.video_id.split("/", 1)[0]
    folders = Path(row.path).parts[:-1]
    for k in range(len(folders) - 1, -1, -1):
        if folders[k] == row.label:
            return folders[k + 1] if k + 1 < len(folders) else row.label
    return row.label


def fake_type_section(kinds: Sequence[str], y: np.ndarray, p: np.ndarray, threshold: float, *, bootstrap: int, seed: int) -> dict[str, Any] | None:
    """Per kind of fake (in order of first appearance): its fakes against all reals, AUC with a
    stratified bootstrap 95% CI (``bootstrap`` replicates; 0: none) and the share called fake at
    ``threshold``; beside them the reals' false-positive rate. ``None`` when no fake has a kind
    (every fake's kind is just ``fake``) or when there are no reals."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=np.float64)
    kinds = np.asarray(kinds, dtype=object)
    reals = y == 0
    names = list(dict.fromkeys(kinds[y == 1]))
    if not reals.any() or names in ([], ["fake"]):
        return None
    out: dict[str, Any] = {"n_real": int(reals.sum()), "fpr": float((p[reals] >= threshold).mean()), "threshold": float(threshold), "types": {}}
    for name in names:
        of_kind = (y == 1) & (kinds == name)
        chosen = reals | of_kind
        ci = bootstrap_ci(auc_roc, y[chosen], p[chosen], n=bootstrap, seed=seed, stratify=True) if bootstrap > 0 else None
        fakes = p[of_kind]
        out["types"][name] = {"n_fake": int(fakes.size), "auc": auc_roc(y[chosen], p[chosen]), "auc_ci": None if ci is None else ci.to_dict(),
                              "tpr": float((fakes >= threshold).mean())}
    return out


__all__ = ["fake_type_section", "media_group"]
