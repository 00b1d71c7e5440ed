"""68-point face landmarks (iBUG 300-W order) with dlib, behind the ``landmarks`` extra.

The model file is ``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models``
package, located without importing that package (its ``__init__`` needs ``pkg_resources``).
Indices: 0-16 jaw, 17-21 / 22-26 eyebrows, 27-35 nose, 36-41 / 42-47 eyes, 48-67 mouth.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np

EXTRA_HINT = "pip install 'deepfake-attention[landmarks]'"
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
NUM_LANDMARKS = 68
_PREDICTORS: dict[tuple[int, str], object] = {}


class LandmarksUnavailableError(ImportError):
    """dlib or the landmark model is not installed; the message says how to install them."""


def import_dlib() -> ModuleType:
    """The ``dlib`` module, or :class:`LandmarksUnavailableError` saying how to install it."""
    try:
        import dlib
    except ImportError:
        raise LandmarksUnavailableError(f"dlib is not installed; {EXTRA_HINT}") from None
    return dlib


def shape_predictor_path() -> Path:
    """Path of the 68-point model inside the installed ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarksUnavailableError(f"the landmark model package face_recognition_models is not installed; {EXTRA_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE
    if not path.is_file():
        raise LandmarksUnavailableError(f"{path} is missing; reinstall it: {EXTRA_HINT}")
    return path


def landmarks_available() -> bool:
    """True when dlib imports and the 68-point model file is installed."""
    try:
        import_dlib()
        shape_predictor_path()
    except LandmarksUnavailableError:
        return False
    return True


class LandmarkPredictor:
    """Predicts 68 landmarks inside a face box; loads the model lazily, once per process.

    Args:
        model_path: a dlib 68-point shape predictor file (default: :func:`shape_predictor_path`).

    Raises :class:`LandmarksUnavailableError` on construction when the extra is missing.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        import_dlib()
        self.model_path = str(shape_predictor_path() if model_path is None else model_path)
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(f"landmark model {self.model_path} does not exist")

    def _model(self) -> object:
        key = (os.getpid(), self.model_path)
        if key not in _PREDICTORS:
            _PREDICTORS[key] = import_dlib().shape_predictor(self.model_path)
        return _PREDICTORS[key]

    def __call__(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Landmarks [68, 2] float32 ``(x, y)`` in ``image`` pixels for the face in ``box`` = (x0, y0, x1, y1)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError("image must be a uint8 numpy array, RGB [H, W, 3] or gray [H, W]")
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box must have x1 > x0 and y1 > y0, got {box}")
        dlib = import_dlib()
        shape = self._model()(np.ascontiguousarray(image), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
