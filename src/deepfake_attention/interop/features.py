"""Per-face outputs for other detectors to fuse: 512-d features, calibrated score, attention map, box.

:func:`extract_features` finds the faces of images and videos (the checkpoint's detector and crop
scale, as ``analyze`` does) and runs the model once per batch in eval mode: the seed's ``features``
come after the fusion layer's ReLU and dropout, and dropout is the identity in eval mode.
:func:`save_features` writes them to a NumPy ``.npz`` (read it with ``allow_pickle=False``; no
array holds Python objects) and a JSON sidecar ``<file>.json`` that documents every array.

Schema ``deepfake-attention/features/1`` (N faces, M inputs, D = feature_dim, h x w the
attention gate's native size, e.g. 28 x 28 for the trunk model at 224 px, 224 x 224 without it):

=================  ===========  ===============================================================
array              dtype/shape  meaning
=================  ===========  ===============================================================
features           f4 [N, D]    the seed's ``features`` vector (eval mode)
prob_fake          f4 [N]       calibrated P(fake) = softmax(logits / T)[fake]
logits             f4 [N, 2]    raw logits (real, fake)
attention          f4 [N, h, w] the attention gate in (0, 1), native size (where the model looks)
box                i4 [N, 4]    face box (x0, y0, x1, y1) in the input's pixels (x1, y1 exclusive)
crop_box           i4 [N, 4]    the square the model's crop was cut from, same coordinates
det_score          f4 [N]       face detector score (NaN: no detector, the whole image is the face)
input_index        i4 [N]       row of ``paths`` the face comes from
face_index         i4 [N]       index of the face within its image or video frame (left to right)
frame              i4 [N]       sample index of the video frame (-1 for images)
time_s             f4 [N]       time of the video frame in seconds (NaN for images)
paths              U [M]        the inputs as given, folders walked in sorted order
kinds              U [M]        image | video
status             U [M]        ok | no_face | error
errors             U [M]        why an input failed, in words ("" when it did not)
attention_scales   f4 [N,S,h,w] per-scale gates, only for multi-scale models
=================  ===========  ===============================================================

Late fusion with another component (e.g. a frequency detector's 64-d vector per face, matched by
``(paths[input_index], face_index)``) and a logistic regression::

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from deepfake_attention.interop.features import load_features

    ours = load_features("train-features.npz")         # labels y [N] from your manifest
    other = np.load("train-frequency.npy")              # [N, 64], same face order
    fused = np.concatenate([ours.features, ours.prob_fake[:, None], other], axis=1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(fused, y)
    p_fake = clf.predict_proba(test_fused)[:, 1]        # fit on training faces, test on held-out ones

The attention map can serve other components as a spatial prior: it is in the crop's frame, so
map it to the input with ``crop_box`` (its side is ``crop_box[2] - crop_box[0]`` pixels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.faces import FaceCrop, find_faces
from ..data.inputs import discover
from ..data.media import MediaError, read_image
from ..data.video import DEFAULT_FRAMES, iter_sampled_frames
from ..detector import Detector, mirror_mean
from ..files import atomic_write_json

SCHEMA = "deepfake-attention/features/1"
STATUSES = ("ok", "no_face", "error")
_FACE_ARRAYS = {
    "features": ("float32", "the seed's features vector after fusion (Linear, ReLU, Dropout) in eval mode"),
    "prob_fake": ("float32", "calibrated P(fake) = softmax(logits / temperature)[fake]"),
    "logits": ("float32", "raw logits (real, fake)"),
    "attention": ("float32", "attention gate in (0, 1) at the model's native size: where the model looks, before any evidence"),
    "box": ("int32", "face box (x0, y0, x1, y1) in the input's pixels, x1 and y1 exclusive"),
    "crop_box": ("int32", "square the crop was cut from (x0, y0, x1, y1), input pixels"),
    "det_score": ("float32", "face detector score; NaN when the whole image is the face"),
    "input_index": ("int32", "row of paths this face comes from"),
    "face_index": ("int32", "index of the face in its image or video frame, left to right"),
    "frame": ("int32", "sample index of the video frame; -1 for images"),
    "time_s": ("float32", "time of the video frame in seconds; NaN for images"),
}
_INPUT_ARRAYS = {
    "paths": "the inputs, as given (folders walked recursively in sorted order)",
    "kinds": "image | video",
    "status": "ok | no_face | error",
    "errors": "why the input failed, in words; empty when it did not",
}


@dataclass
class FeatureSet:
    """The arrays of a features file (module docstring) and its JSON description ``meta``."""

    features: np.ndarray
    prob_fake: np.ndarray
    logits: np.ndarray
    attention: np.ndarray
    box: np.ndarray
    crop_box: np.ndarray
    det_score: np.ndarray
    input_index: np.ndarray
    face_index: np.ndarray
    frame: np.ndarray
    time_s: np.ndarray
    paths: np.ndarray
    kinds: np.ndarray
    status: np.ndarray
    errors: np.ndarray
    attention_scales: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (``attention_scales`` only when present)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "meta"}
        return {k: v for k, v in out.items() if v is not None}


def _outputs(detector: Detector, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One forward pass of a normalised batch: float logits, attention [N, h, w], attention scales [N, S, h, w] or None, features."""
    with torch.inference_mode():
        out = detector.model(batch.to(detector.device, memory_format=torch.channels_last))
    scales = out["attention_scales"][:, :, 0].float() if "attention_scales" in out else None
    return out["output"].float(), out["attention_weights"][:, 0].float(), scales, out["features"].float()


def face_features(detector: Detector, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Model outputs for face crops (RGB uint8, any size; resized to the checkpoint's size).

    Returns ``features`` [N, D], ``logits`` [N, 2], ``prob_fake`` [N] (calibrated), ``attention``
    [N, h, w] (native size) and, for multi-scale models, ``attention_scales`` [N, S, h, w]; float32.
    With the checkpoint's ``preprocess.flip_average``, logits and maps are the means over each crop
    and its mirror (as :meth:`~.detector.Detector.predict` scores them) and features the crop's own.
    """
    if len(crops) == 0:
        raise ValueError("no crops given; pass at least one RGB uint8 face crop")
    _, batch = detector.prepare(crops)
    logits, attention, scales, features = _outputs(detector, batch)
    if detector.config.preprocess.flip_average:  # a second pass, as Detector.predict scores it
        mirror_logits, mirror_attention, mirror_scales, _ = _outputs(detector, batch.flip(-1))
        logits, attention = (logits + mirror_logits) / 2, mirror_mean(attention, mirror_attention)
        scales = None if scales is None else mirror_mean(scales, mirror_scales)
    result = {
        "features": features.cpu().numpy(),
        "logits": logits.cpu().numpy(),
        "prob_fake": detector.probabilities(logits).cpu().numpy().astype(np.float32),
        "attention": attention.cpu().numpy(),
    }
    if scales is not None:
        result["attention_scales"] = scales.cpu().numpy()
    return result


@dataclass
class _Face:
    input_index: int
    face_index: int
    frame: int
    time_s: float
    face: FaceCrop


def _faces_of(index: int, path: str, kind: str, detector: Detector, face_detect: bool, frames: int) -> Iterator[_Face]:
    """The faces of one input (raises MediaError when it cannot be read)."""
    pre = detector.config.preprocess
    if kind == "image":
        for k, face in enumerate(find_faces(read_image(path), pre, enabled=face_detect)):
            yield _Face(index, k, -1, float("nan"), face)
        return
    with iter_sampled_frames(path, frames=frames) as sampled:
        for frame in sampled:
            for k, face in enumerate(find_faces(frame.image, pre, enabled=face_detect)):
                yield _Face(index, k, frame.sample_index, frame.time_s, face)


def extract_features(
    inputs: Iterable[str | Path],
    *,
    model: str | Path | Detector | None = None,
    device: str = "auto",
    batch_size: int = 32,
    face_detect: bool = True,
    frames_per_video: int = DEFAULT_FRAMES,
    progress: bool | None = None,
) -> FeatureSet:
    """Features, scores, attention maps and boxes of every face in ``inputs`` (files and folders).

    Args:
        model: a checkpoint folder or a loaded :class:`Detector` (default: the shipped model).
        batch_size: faces per forward pass.
        face_detect: ``False`` scores each whole image (or frame) as one face.
        frames_per_video: frames sampled uniformly from each video.
        progress: a progress bar (None: only when stderr is a terminal).

    An input that cannot be read gets ``status="error"`` and its message; one without faces
    ``"no_face"``; neither adds face rows. Never raises for bad media.
    """
    if batch_size < 1 or frames_per_video < 1:
        raise ValueError(f"batch_size and frames_per_video must be >= 1, got {batch_size}, {frames_per_video}")
    detector = model if isinstance(model, Detector) else Detector.load(model, device=device)
    items, _ = discover(inputs)
    if not items:
        raise ValueError("no inputs found: give image or video files, or folders holding them")
    columns: dict[str, list] = {name: [] for name in (*_FACE_ARRAYS, "attention_scales")}
    status, errors, pending = ["no_face"] * len(items), [""] * len(items), []

    def flush() -> None:
        if not pending:
            return
        out = face_features(detector, [p.face.crop for p in pending])
        for key, values in out.items():
            columns[key].extend(values)
        for p in pending:
            face = p.face
            columns["box"].append(face.box)
            columns["crop_box"].append(face.crop_box if face.crop_box is not None else face.box)
            columns["det_score"].append(np.nan if face.score is None else face.score)
            for key in ("input_index", "face_index", "frame", "time_s"):
                columns[key].append(getattr(p, key))
        pending.clear()

    for index, item in enumerate(tqdm(items, desc="features", unit="input", disable=None if progress is None else not progress)):
        try:
            for face in _faces_of(index, item.path, item.kind, detector, face_detect, frames_per_video):
                status[index] = "ok"
                pending.append(face)
                if len(pending) >= batch_size:
                    flush()
        except MediaError as error:
            status[index], errors[index] = "error", str(error)
    flush()
    size = detector.config.preprocess.size
    sample = face_features(detector, [np.zeros((size, size, 3), np.uint8)]) if not columns["features"] else None
    arrays = {}
    for name, (dtype, _) in _FACE_ARRAYS.items():
        values = columns[name]
        if values:
            arrays[name] = np.asarray(values, dtype=dtype)
        else:  # no face at all: empty arrays of the right trailing shape
            trailing = sample[name].shape[1:] if name in sample else ((4,) if name in ("box", "crop_box") else ())
            arrays[name] = np.zeros((0, *trailing), dtype=dtype)
    scales = np.asarray(columns["attention_scales"], dtype=np.float32) if columns["attention_scales"] else None
    result = FeatureSet(
        **arrays, attention_scales=scales, paths=_strings([i.path for i in items]), kinds=_strings([i.kind for i in items]),
        status=_strings(status), errors=_strings(errors),
    )
    result.meta = _meta(result, detector, {"face_detect": face_detect, "frames_per_video": frames_per_video, "batch_size": batch_size})
    return result


def write_features(inputs: Iterable[str | Path], out: str | Path, **options: Any) -> tuple[FeatureSet, Path]:
    """:func:`extract_features` (``options`` are its keyword arguments) then :func:`save_features`
    to ``out``: the ``deepfake-attention features`` command. Returns the set and the npz path."""
    features = extract_features(inputs, **options)
    return features, save_features(features, out)


def _strings(values: list[str]) -> np.ndarray:
    """A fixed-width unicode array (stored without pickle); never an object array."""
    return np.asarray(values, dtype=np.str_) if values else np.zeros((0,), dtype="<U1")


def _meta(fs: FeatureSet, detector: Detector, options: dict[str, Any]) -> dict[str, Any]:
    from ..version import __version__

    config = detector.config
    described = {name: {"dtype": dtype, "shape": list(getattr(fs, name).shape), "meaning": meaning} for name, (dtype, meaning) in _FACE_ARRAYS.items()}
    described.update({name: {"dtype": "unicode", "shape": list(getattr(fs, name).shape), "meaning": meaning} for name, meaning in _INPUT_ARRAYS.items()})
    if fs.attention_scales is not None:
        described["attention_scales"] = {"dtype": "float32", "shape": list(fs.attention_scales.shape), "meaning": "per-scale attention gates (scales in model.attention_scales)"}
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(),
        "package_version": __version__,
        "arrays": described,
        "counts": {"faces": len(fs), "inputs": int(fs.paths.shape[0]), **{s: int((fs.status == s).sum()) for s in STATUSES}},
        "model": {
            "sha256": config.weights_sha256, "trained": config.trained, "config": config.model, "temperature": config.temperature,
            "threshold": config.threshold, "class_names": list(config.class_names), "target_layer": config.target_layer,
            "preprocess": {"size": config.preprocess.size, "mean": list(config.preprocess.mean), "std": list(config.preprocess.std),
                           "crop_scale": config.preprocess.crop_scale, "detector": config.preprocess.detector},
        },
        "options": options,
        "notes": [] if config.trained else ["UNTRAINED placeholder model: every score and feature is meaningless"],
    }


def save_features(fs: FeatureSet, path: str | Path) -> Path:
    """Write ``fs`` to ``path`` (``.npz`` added when missing; compressed) and ``<path>.json``; returns the npz path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = fs.arrays()
    bad = [name for name, value in arrays.items() if value.dtype == object]
    if bad:
        raise TypeError(f"arrays {bad} hold Python objects; the file must load with allow_pickle=False")
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    atomic_write_json(path.with_name(path.name + ".json"), fs.meta)
    return path


def load_features(path: str | Path) -> FeatureSet:
    """Read a features file (``allow_pickle=False``) and its sidecar; checks the schema and the shapes."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"need both {path} and its description {sidecar}")
    meta = json.loads(sidecar.read_text())
    if meta.get("schema") != SCHEMA:
        raise ValueError(f"{sidecar} has schema {meta.get('schema')!r}; this package reads {SCHEMA!r}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    expected = set(_FACE_ARRAYS) | set(_INPUT_ARRAYS)
    missing = sorted(expected - set(arrays))
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}; it was not written by save_features")
    faces = {arrays[name].shape[0] for name in _FACE_ARRAYS} | ({arrays["attention_scales"].shape[0]} if "attention_scales" in arrays else set())
    inputs = {arrays[name].shape[0] for name in _INPUT_ARRAYS}
    if len(faces) != 1 or len(inputs) != 1:
        raise ValueError(f"{path} has face arrays of lengths {sorted(faces)} and input arrays of lengths {sorted(inputs)}; each group must agree")
    return FeatureSet(**arrays, meta=meta)
