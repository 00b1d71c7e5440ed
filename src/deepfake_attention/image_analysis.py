"""One image's part of ``analyze``: load and find faces, build its result row, render its panel
and maps. Videos have theirs in ``video_analysis``; the pipeline that drives both is ``analysis``."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .checkpoint import Preprocess
from .data.faces import FaceCrop, find_faces
from .data.media import MediaError, decode_image, read_bytes
from .detector import Detector, FacePrediction
from .explain.render import FaceView, map_png, render_panel, safe_stem
from .explain.words import describe_face
from .inputs import InputItem
from .results import Detection, ResultRow

if TYPE_CHECKING:
    from .analysis_options import AnalyzeOptions


@dataclass
class LoadedInput:
    """An input after decoding and face finding (done in a DataLoader worker)."""

    index: int
    item: InputItem
    input_sha256: str | None = None
    faces: list[FaceCrop] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def load_image(index: int, item: InputItem, max_pixels: int, preprocess: Preprocess, *, face_detect: bool = True) -> LoadedInput:
    """Read, hash and decode one image and find its faces (in a DataLoader worker); failures become ``error``."""
    start = time.perf_counter()
    loaded = LoadedInput(index=index, item=item)
    try:
        data = read_bytes(item.path)
        loaded.input_sha256 = hashlib.sha256(data).hexdigest()
        image = decode_image(data, max_pixels=max_pixels)
        loaded.faces = find_faces(image, preprocess.detector, preprocess.crop_scale, enabled=face_detect)
    except MediaError as error:
        loaded.error = str(error)
    loaded.seconds = time.perf_counter() - start
    return loaded


def rendered_name(path: str, suffix: str = "") -> str:
    """``<stem>-<hash8><suffix>.png``: the hash of the input path keeps same-named files apart."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"{safe_stem(path)}-{digest}{suffix}.png"


class Renderer:
    """Writes panels and per-face maps under the output folder; returns paths relative to it."""

    def __init__(self, out_dir: Path, options: "AnalyzeOptions", threshold: float, untrained: bool) -> None:
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
        panel = render_panel(views, self.threshold, title=Path(loaded.item.path).name, untrained=self.untrained)
        return self.save(panel, "panels", rendered_name(loaded.item.path))


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
        detections.append(Detection(face_index=k, box=face.box, det_score=face.score, prob_fake=pred.prob_fake, words=words.summary, regions=words.shares))
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
