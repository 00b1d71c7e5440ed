"""One image's part of ``analyze``: load and find faces, build its result row, render its panel
and maps. Videos have theirs in ``video``; the pipeline that drives both is ``pipeline``. The web
service uses the same functions (:func:`find_image_faces`, :func:`image_result`, :func:`face_layers`)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..crops import crop_geometry
from ..data.faces import FaceCrop, find_faces
from ..data.inputs import InputItem
from ..data.media import MediaError, decode_image, read_bytes
from ..data.transforms import Preprocess, resize_square
from ..detector import Detector, FacePrediction
from ..explain.render import FaceView, evidence_layer, map_png, render_panel
from ..explain.words import WordsExplanation, describe_map
from ..files import display_path, raw_path_bytes, safe_stem
from .options import AnalyzeOptions
from .results import Detection, ResultRow, points_json


@dataclass
class LoadedInput:
    """An input after decoding and face finding (done in a DataLoader worker)."""

    index: int
    item: InputItem
    input_sha256: str | None = None
    faces: list[FaceCrop] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class ImageFaces:
    """A decoded image's size and the faces the checkpoint wants scored."""

    width: int
    height: int
    faces: list[FaceCrop]


def find_image_faces(data: bytes, preprocess: Preprocess, *, max_pixels: int, face_detect: bool = True, resize: bool = False) -> ImageFaces:
    """Decode image bytes (EXIF-upright RGB) and find its faces as the checkpoint's preprocessing says.

    ``resize`` also resizes each crop to the model's input size (then ``Detector.prepare`` has
    nothing left to do, and the full image can be freed early). Raises :class:`MediaError`.
    """
    image = decode_image(data, max_pixels=max_pixels)
    faces = find_faces(image, preprocess, enabled=face_detect)
    if resize:
        faces = [dataclasses.replace(face, crop=resize_square(face.crop, preprocess.size)) for face in faces]
    return ImageFaces(width=image.shape[1], height=image.shape[0], faces=faces)


def load_image(index: int, item: InputItem, max_pixels: int, preprocess: Preprocess, *, face_detect: bool = True) -> LoadedInput:
    """Read, hash and decode one image and find its faces (in a DataLoader worker); failures become ``error``."""
    start = time.perf_counter()
    loaded = LoadedInput(index=index, item=item)
    try:
        data = read_bytes(item.path)
        loaded.input_sha256 = hashlib.sha256(data).hexdigest()
        loaded.faces = find_image_faces(data, preprocess, max_pixels=max_pixels, face_detect=face_detect).faces
    except MediaError as error:
        loaded.error = str(error)
    loaded.seconds = time.perf_counter() - start
    return loaded


def rendered_name(path: str, suffix: str = "") -> str:
    """``<stem>-<hash8><suffix>.png``: the hash of the input path's bytes (:func:`~..files.raw_path_bytes`)
    keeps same-named files apart, also names that are not UTF-8 or differ only in such bytes."""
    digest = hashlib.sha256(raw_path_bytes(path)).hexdigest()[:8]
    return f"{safe_stem(path)}-{digest}{suffix}.png"


class Renderer:
    """Writes panels and per-face maps under the output folder; returns paths relative to it."""

    def __init__(self, out_dir: Path, options: AnalyzeOptions, threshold: float, untrained: bool) -> None:
        self.out_dir, self.options, self.threshold, self.untrained = out_dir, options, threshold, untrained

    name = staticmethod(rendered_name)

    def save(self, image: Any, folder: str, name: str) -> str:
        target = self.out_dir / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG", compress_level=1)  # zlib level 1: 4x faster than the default 6, files 1.3x larger
        return f"{folder}/{name}"

    def render(self, loaded: LoadedInput, predictions: list[FacePrediction], detections: list[Detection]) -> str | None:
        if self.options.save_maps == "none":
            return None
        if self.options.save_maps == "all":
            for det, pred in zip(detections, predictions):
                det.attention_png = self.save(map_png(pred.attention), "attention", rendered_name(loaded.item.path, f"-f{det.face_index}"))
                if pred.gradcampp is not None:
                    det.gradcampp_png = self.save(map_png(pred.gradcampp), "gradcampp", rendered_name(loaded.item.path, f"-f{det.face_index}"))
        views = [
            FaceView(pred.crop, pred.attention, pred.gradcampp, pred.prob_fake, "fake" if pred.prob_fake >= self.threshold else "real")
            for pred in predictions
        ]
        panel = render_panel(views, self.threshold, title=display_path(Path(loaded.item.path).name), untrained=self.untrained)
        return self.save(panel, "panels", rendered_name(loaded.item.path))


def describe_face(prediction: FacePrediction, face: FaceCrop | None = None, *, threshold: float | None = None, which: str = "gradcampp") -> WordsExplanation:
    """:func:`describe_map` for one face of the pipeline.

    Args:
        prediction: a :class:`~..detector.FacePrediction` (its ``crop``, ``gradcampp``, ``attention``, ``prob_fake``).
        face: its :class:`~..data.faces.FaceCrop` (landmarks and boxes), or None (template in the central box).
        threshold: when given, ``prob_fake < threshold`` words the summary as a real verdict.
        which: ``"gradcampp"`` (falls back to the attention gate when it was not computed) or ``"attention"``.
    """
    if which not in ("gradcampp", "attention"):
        raise ValueError(f"which must be 'gradcampp' or 'attention', got {which!r}")
    values = prediction.gradcampp if which == "gradcampp" and prediction.gradcampp is not None else prediction.attention
    size = prediction.crop.shape[0]
    points, box = None, None
    if face is not None and face.crop_box is not None:
        points, box = crop_geometry(face.crop_box, size, landmarks=face.landmarks, box=face.box)
        if face.score is None:  # the whole image is the "face": its box says nothing; use the central box
            box = None
    label = None if threshold is None else ("fake" if prediction.prob_fake >= threshold else "real")
    return describe_map(values, landmarks=points, face_box=box, frame=(size, size), label=label)


def face_layers(pred: FacePrediction) -> dict[str, np.ndarray | None]:
    """The crop the model saw (RGB) and its map layers (RGBA, :func:`~..explain.render.evidence_layer`):
    the attention gate at strength 1, Grad-CAM++ (None when not computed) at strength ``prob_fake``."""
    size = (pred.crop.shape[1], pred.crop.shape[0])
    return {
        "crop_png": pred.crop,
        "attention_png": evidence_layer(pred.attention, 1.0, size),
        "gradcampp_png": None if pred.gradcampp is None else evidence_layer(pred.gradcampp, min(1.0, max(0.0, pred.prob_fake)), size),
    }


def image_result(
    *, path: str, faces: Sequence[FaceCrop], predictions: Sequence[FacePrediction], detector: Detector, threshold: float,
    input_sha256: str | None, seconds: float, kind: str = "image",
) -> ResultRow:
    """The result row of one decoded input from its faces and their predictions (nothing rendered).

    No faces -> ``no_face``; else ``prob_fake`` is the max over faces and ``label`` follows ``threshold``.
    """
    base = dict(path=path, kind=kind, threshold=threshold, model_sha256=detector.model_sha256, input_sha256=input_sha256, model_trained=detector.trained, seconds=seconds)
    if not predictions:
        return ResultRow(status="no_face", error="no face was found in the image", **base)
    detections = []
    for k, (face, pred) in enumerate(zip(faces, predictions)):
        words = describe_face(pred, face, threshold=threshold)
        detections.append(Detection(face_index=k, box=face.box, det_score=face.score, prob_fake=pred.prob_fake, words=words.summary, regions=words.shares,
                                    landmarks5=points_json(face.landmarks5)))
    prob = max(pred.prob_fake for pred in predictions)
    return ResultRow(status="ok", prob_fake=prob, label="fake" if prob >= threshold else "real", faces=len(predictions), detections=detections, **base)


def make_image_row(
    loaded: LoadedInput, preds: list[FacePrediction], detector: Detector, threshold: float, renderer: Renderer, per_face: float,
) -> ResultRow:
    """The row of one loaded image: an error row, or :func:`image_result` plus its rendered panel."""
    start = time.perf_counter()
    if loaded.error is not None:
        return ResultRow(
            path=loaded.item.path, kind=loaded.item.kind, status="error", error=loaded.error, threshold=threshold,
            model_sha256=detector.model_sha256, input_sha256=loaded.input_sha256, model_trained=detector.trained, seconds=loaded.seconds,
        )
    row = image_result(
        path=loaded.item.path, kind=loaded.item.kind, faces=loaded.faces, predictions=preds, detector=detector,
        threshold=threshold, input_sha256=loaded.input_sha256, seconds=loaded.seconds + per_face * len(preds),
    )
    if row.status == "ok":
        row.panel = renderer.render(loaded, preds, row.detections)
    row.seconds += time.perf_counter() - start
    return row
