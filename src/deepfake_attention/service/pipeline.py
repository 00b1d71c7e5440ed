"""One uploaded image -> its response: decode and find faces (worker thread), score the crops in
the shared batch queue, build the row with :func:`~..analysis.image.image_result` (the CLI's row logic),
and render each face's crop and map layers as inline PNG data URIs (worker thread).

The map layers are RGBA: colour = the map through the colormap, alpha = ``MAX_OPACITY *
strength * value`` (strength 1 for the attention gate, ``prob_fake`` for Grad-CAM++). Drawn over
the crop at full opacity a layer gives exactly :func:`explain.render.overlay` (within 1/255 of
alpha quantisation), so the page's opacity slider only ever fades the honest overlay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..analysis.image import ImageFaces, face_layers, find_image_faces, image_result
from ..data.media import MediaError
from ..detector import Detector, FacePrediction
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


@dataclass
class Decoded:
    """An upload after decoding and face finding, with its bytes' SHA-256."""

    found: ImageFaces
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
        predictions = await self.batcher.predict([face.crop for face in decoded.found.faces])
        return await loop.run_in_executor(self.executor, self.finish, decoded, predictions, filename, started)

    def decode(self, data: bytes) -> Decoded:
        """Decode (EXIF-upright RGB) and find the faces the checkpoint wants scored, as ``analyze`` does."""
        try:
            # Crops are resized here, in a worker thread, to the model's input size (``Detector.prepare``
            # then has nothing left to do): the model thread does model work only.
            found = find_image_faces(data, self.detector.config.preprocess, max_pixels=self.max_pixels, resize=True)
        except MediaError as error:
            raise RequestError(422, str(error)) from None
        return Decoded(found=found, input_sha256=hashlib.sha256(data).hexdigest())

    def finish(self, decoded: Decoded, predictions: list[FacePrediction], filename: str, started: float) -> dict[str, Any]:
        """The CLI's row (``image_result``) plus per-face label, crop box and PNG layers."""
        detector = self.detector
        row = image_result(
            path=filename, faces=decoded.found.faces, predictions=predictions, detector=detector,
            threshold=detector.threshold, input_sha256=decoded.input_sha256, seconds=0.0,
        )
        result = row.to_json()
        for det, face, pred in zip(result["detections"], decoded.found.faces, predictions):
            det.update(face_images(pred))
            det["label"] = "fake" if pred.prob_fake >= detector.threshold else "real"
            det["crop_box"] = list(face.crop_box) if face.crop_box is not None else None
        result["image_size"] = [decoded.found.width, decoded.found.height]
        result["untrained_warning"] = None if detector.trained else UNTRAINED_WARNING
        result["seconds"] = round(time.perf_counter() - started, 4)
        return result


def face_images(pred: FacePrediction) -> dict[str, str | None]:
    """The crop the model saw and its two map layers (:func:`~..analysis.image.face_layers`) as PNG data URIs."""
    return {name: None if layer is None else png_data_uri(layer) for name, layer in face_layers(pred).items()}
