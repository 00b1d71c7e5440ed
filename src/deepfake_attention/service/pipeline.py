"""One uploaded image -> its response: decode and find faces (worker thread), score the crops in
the shared batch queue, build the row with :func:`image_analysis.image_result` (the CLI's row logic),
and render each face's crop and map layers as inline PNG data URIs (worker thread).

The map layers are RGBA: colour = the map through the colormap, alpha = ``MAX_OPACITY *
strength * value`` (strength 1 for the attention gate, ``prob_fake`` for Grad-CAM++). Drawn over
the crop at full opacity a layer gives exactly :func:`explain.render.overlay` (within 1/255 of
alpha quantisation), so the page's opacity slider only ever fades the honest overlay.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..image_analysis import image_result
from ..data.faces import FaceCrop, find_faces
from ..data.media import MediaError, decode_image
from ..data.transforms import resize_square
from ..detector import Detector, FacePrediction
from ..explain.render import MAX_OPACITY, colorize, resize_map
from .batching import BatchQueue
from .uploads import RequestError

UNTRAINED_WARNING = "UNTRAINED placeholder model: every score is meaningless"
PNG_PREFIX = "data:image/png;base64,"


def png_data_uri(array: np.ndarray) -> str:
    """An RGB or RGBA ``uint8`` array [H, W, 3|4] as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return PNG_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_data_uri(data: bytes) -> str:
    """PNG file bytes as a data URI."""
    return PNG_PREFIX + base64.b64encode(data).decode("ascii")


def evidence_layer(values: np.ndarray, strength: float, size: tuple[int, int] | None = None) -> np.ndarray:
    """A [0, 1] map as an RGBA ``uint8`` layer: colormap colour, alpha ``MAX_OPACITY * strength * value``.

    ``size`` = (width, height) resizes the map first (bilinear). Compositing the layer over an
    image reproduces :func:`~deepfake_attention.explain.render.overlay` with the same strength.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    values = np.clip(np.nan_to_num(resize_map(values, size) if size else np.asarray(values, np.float32), nan=0.0), 0.0, 1.0)
    alpha = np.clip(np.rint(255.0 * MAX_OPACITY * strength * values), 0, 255).astype(np.uint8)
    return np.dstack([colorize(values), alpha])


@dataclass
class Decoded:
    """An upload after decoding and face finding."""

    width: int
    height: int
    faces: list[FaceCrop]
    input_sha256: str


class ImagePipeline:
    """Turns image bytes into the ``/v1/analyze`` response (a dict matching ``AnalyzeResponse``).

    Args:
        detector: the loaded model (its preprocessing decides the face detector and crop scale).
        batcher: the shared :class:`BatchQueue` in front of ``detector.predict``.
        executor: threads for decoding, face finding and rendering (never the event loop).
        max_pixels: decompression-bomb guard handed to :func:`decode_image`.
    """

    def __init__(self, detector: Detector, batcher: BatchQueue, executor: Executor, *, max_pixels: int) -> None:
        self.detector, self.batcher, self.executor, self.max_pixels = detector, batcher, executor, max_pixels

    async def run(self, data: bytes, filename: str) -> dict[str, Any]:
        """Analyze one image; raises :class:`RequestError` 422 with the decoder's message when unusable."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        decoded = await loop.run_in_executor(self.executor, self.decode, data)
        predictions = await self.batcher.predict([face.crop for face in decoded.faces])
        return await loop.run_in_executor(self.executor, self.finish, decoded, predictions, filename, started)

    def decode(self, data: bytes) -> Decoded:
        """Decode (EXIF-upright RGB) and find the faces the checkpoint wants scored."""
        try:
            image = decode_image(data, max_pixels=self.max_pixels)
        except MediaError as error:
            raise RequestError(422, str(error)) from None
        pre = self.detector.config.preprocess
        # Resized here, in a worker thread, to the model's input size (``Detector.prepare`` then has
        # nothing left to do): the model thread does model work only, and the full image is freed.
        faces = [dataclasses.replace(face, crop=resize_square(face.crop, pre.size)) for face in find_faces(image, pre.detector, pre.crop_scale)]
        return Decoded(width=image.shape[1], height=image.shape[0], faces=faces, input_sha256=hashlib.sha256(data).hexdigest())

    def finish(self, decoded: Decoded, predictions: list[FacePrediction], filename: str, started: float) -> dict[str, Any]:
        """The CLI's row (``image_result``) plus per-face label, crop box and PNG layers."""
        detector = self.detector
        row = image_result(
            path=filename, faces=decoded.faces, predictions=predictions, detector=detector,
            threshold=detector.threshold, input_sha256=decoded.input_sha256, seconds=0.0,
        )
        result = row.to_json()
        for det, face, pred in zip(result["detections"], decoded.faces, predictions):
            det.update(face_images(pred))
            det["label"] = "fake" if pred.prob_fake >= detector.threshold else "real"
            det["crop_box"] = list(face.crop_box) if face.crop_box is not None else None
        result["image_size"] = [decoded.width, decoded.height]
        result["untrained_warning"] = None if detector.trained else UNTRAINED_WARNING
        result["seconds"] = round(time.perf_counter() - started, 4)
        return result


def face_images(pred: FacePrediction) -> dict[str, str | None]:
    """The crop the model saw and its two map layers as PNG data URIs (Grad-CAM++ may be None)."""
    size = (pred.crop.shape[1], pred.crop.shape[0])
    return {
        "crop_png": png_data_uri(pred.crop),
        "attention_png": png_data_uri(evidence_layer(pred.attention, 1.0, size)),
        "gradcampp_png": None if pred.gradcampp is None else png_data_uri(evidence_layer(pred.gradcampp, min(1.0, max(0.0, pred.prob_fake)), size)),
    }
