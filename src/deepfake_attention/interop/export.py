"""Export a detector for runtimes without this package: ONNX or a ``torch.export`` program.

The exported graph is :class:`ExportWrapper`: a normalised batch ``image`` [B, 3, H, W] float32
(``(rgb / 255 - mean) / std`` with the checkpoint's preprocessing) in, ``(logits [B, 2],
attention [B, 1, H, W])`` out: the raw logits (real, fake; ``P(fake) = softmax(logits / T)[:, 1]``
with the checkpoint's temperature ``T``) and the model's attention gate, upsampled bilinearly to
the input size (``upsample=False``: at the block's native size, e.g. [B, 1, H/8, W/8] with the
trunk). A checkpoint with ``preprocess.flip_average`` exports a graph that also scores the mirror
and returns the means, so its outputs match the checkpoint's temperature and threshold. The batch
is always dynamic; height and width are dynamic too (``dynamic_size=True``, from ``min_side``
pixels up) since every layer here (the trunk's strided convolutions, the
seed block's 1x1 and 3x3 convolutions, the multi-scale pooling, global average pooling) is
defined for any input size.

- ``format="onnx"``: ``torch.onnx.export(..., dynamo=True)`` (the current exporter, which needs
  ``onnxscript``); the checkpoint's config is stored in the model's metadata (``metadata_props``
  key ``deepfake_attention``). Run it with ``onnxruntime``.
- ``format="exported-program"``: ``torch.export.export`` saved with ``torch.export.save``
  (a ``.pt2`` archive, no pickled code); load it with ``torch.export.load(path).module()``.

Beside the file, ``<file>.json`` describes inputs, outputs, preprocessing, temperature, threshold
and the parity check. By default :func:`export` checks parity on random inputs at two batch sizes
(and two input sizes when they are dynamic) against the PyTorch model and refuses to finish when
the largest absolute difference on logits or maps exceeds ``tolerance`` (1e-4).

Which explanations need the PyTorch model: the attention gate is an output of the exported graph,
but Grad-CAM++ needs the gradient of the fake score with respect to an inner activation, which an
inference graph does not compute: for Grad-CAM++ load the checkpoint with this package
(:class:`~.detector.Detector`). TorchScript is deprecated upstream and not offered.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointConfig
from ..detector import Detector, mirror_mean
from ..files import atomic_write_json
from ..model import AttentionMapModel
from ..model.backbones import trunk_spec

FORMATS = ("onnx", "exported-program")
SUFFIXES = {"onnx": ".onnx", "exported-program": ".pt2"}
INPUT_NAME, OUTPUT_NAMES = "image", ("logits", "attention")
METADATA_KEY = "deepfake_attention"
EXTRA_HINT = "pip install 'deepfake-attention[export]'"
GRADCAM_NOTE = "Grad-CAM++ needs gradients through the model: use the PyTorch checkpoint (deepfake_attention.Detector) for it; the exported graph gives logits and the attention gate only."


class ExportWrapper(nn.Module):
    """``image [B, 3, H, W] -> (logits [B, C], attention [B, 1, H, W] or native [B, 1, h, w])``.

    Args:
        model: the model (any :class:`AttentionMapModel` variant); the wrapper holds a CPU float32
            copy in eval mode, so the caller's model is left as it was.
        upsample: attention at the input size (bilinear, ``align_corners=False``, clamped to
            [0, 1] like :func:`~.explain.cam.attention_map`) or at the block's native size.
        flip_average: the checkpoint's ``preprocess.flip_average``: the graph scores each image
            with its horizontal mirror and returns the mean logits and the mean attention (the
            mirror's flipped back), as :meth:`~.detector.Detector.predict` does.
    """

    def __init__(self, model: AttentionMapModel, *, upsample: bool = True, flip_average: bool = False) -> None:
        super().__init__()
        if not isinstance(model, AttentionMapModel):
            raise TypeError(f"model must be an AttentionMapModel, got {type(model).__name__}")
        self.model = copy.deepcopy(model).to("cpu", torch.float32, memory_format=torch.contiguous_format).eval()
        self.upsample = upsample
        self.flip_average = flip_average
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, attention = self._pass(image)
        if self.flip_average:
            mirrored_logits, mirrored_attention = self._pass(image.flip(-1))
            logits, attention = (logits + mirrored_logits) / 2, mirror_mean(attention, mirrored_attention)
        return logits, attention

    def _pass(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        attention = out["attention_weights"]
        if self.upsample:
            attention = F.interpolate(attention, size=image.shape[-2:], mode="bilinear", align_corners=False).clamp(0.0, 1.0)
        return out["output"], attention


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and measured."""

    path: Path
    format: str
    sidecar: Path
    dynamic: dict[str, Any]
    parity: list[dict[str, Any]]
    """One entry per checked input shape: ``{"shape", "logits_max_abs", "attention_max_abs"}``."""


def min_side(model: AttentionMapModel) -> int:
    """Smallest input side the model takes: the trunk's stride times the coarsest attention scale (>= 16)."""
    stride = 1 if model.trunk_name is None else trunk_spec(model.trunk_name).stride
    return max(16, stride * max(model.attention_scales))


def _load(source: Detector | str | Path | None) -> tuple[AttentionMapModel, CheckpointConfig]:
    if isinstance(source, Detector):
        return source.model, source.config
    if source is not None and not isinstance(source, (str, Path)):
        raise TypeError(f"export takes a Detector or a checkpoint folder, got {type(source).__name__}")
    detector = Detector.load(source, device="cpu")
    return detector.model, detector.config


def export(
    detector_or_checkpoint: Detector | str | Path | None,
    out: str | Path,
    format: str = "onnx",
    *,
    dynamic_size: bool = True,
    upsample: bool = True,
    check: bool = True,
    tolerance: float = 1e-4,
    max_side: int = 4096,
) -> ExportResult:
    """Export a detector (or a checkpoint folder; ``None``: the shipped model) to ``out``.

    Args:
        out: the file to write; its suffix is added when missing (``.onnx`` / ``.pt2``).
        format: ``"onnx"`` or ``"exported-program"``.
        dynamic_size: height and width dynamic in ``[min_side(model), max_side]`` (else fixed
            to the checkpoint's preprocessing size); the batch is always dynamic.
        upsample: attention at the input size (default) or at the block's native size.
        check: compare the written file with the PyTorch model (:func:`check_parity`) and raise
            ``ValueError`` when a difference exceeds ``tolerance``.

    Returns an :class:`ExportResult`; also writes ``<out>.json`` (module docstring).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    model, config = _load(detector_or_checkpoint)
    wrapper = ExportWrapper(model, upsample=upsample, flip_average=config.preprocess.flip_average)
    size = config.preprocess.size
    low = min_side(wrapper.model)
    if dynamic_size and not low <= size <= max_side:
        raise ValueError(f"the checkpoint's input size {size} lies outside [{low}, {max_side}]; raise max_side or export with dynamic_size=False")
    path = Path(out)
    if path.suffix != SUFFIXES[format]:
        path = path.with_name(path.name + SUFFIXES[format])
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, wrapper.model.input_channels, size, size, generator=torch.Generator().manual_seed(0))
    axes = {0: torch.export.Dim("batch", min=1, max=4096)}
    if dynamic_size:
        axes.update({2: torch.export.Dim("height", min=low, max=max_side), 3: torch.export.Dim("width", min=low, max=max_side)})
    dynamic = {"batch": True, "height": dynamic_size, "width": dynamic_size, "min_side": low if dynamic_size else size, "max_side": max_side if dynamic_size else size}
    metadata = _metadata(config, format, path, dynamic, upsample)
    if format == "onnx":
        _export_onnx(wrapper, example, axes, path, metadata)
    else:
        program = torch.export.export(wrapper, (example,), dynamic_shapes={"image": axes})
        torch.export.save(program, str(path))
    parity: list[dict[str, Any]] = []
    if check:
        sizes = [size, min(max_side, size + 32)] if dynamic_size else [size]
        parity = check_parity(path, wrapper, sizes=sizes, batch_sizes=(1, 3))
        worst = max(max(p["logits_max_abs"], p["attention_max_abs"]) for p in parity)
        if worst > tolerance:
            raise ValueError(f"{path} differs from the PyTorch model by up to {worst:.3g} (> {tolerance:g}); see {parity}")
    sidecar = path.with_name(path.name + ".json")
    atomic_write_json(sidecar, {**metadata, "parity": parity, "tolerance": tolerance if check else None})
    return ExportResult(path=path, format=format, sidecar=sidecar, dynamic=dynamic, parity=parity)


def _metadata(config: CheckpointConfig, format: str, path: Path, dynamic: dict[str, Any], upsample: bool) -> dict[str, Any]:
    from ..version import __version__

    pre = config.preprocess
    return {
        "schema": "deepfake-attention/export/1",
        "format": format,
        "file": path.name,
        "input": {"name": INPUT_NAME, "shape": ["B", 3, "H", "W"], "dtype": "float32",
                  "meaning": f"RGB crop resized to {pre.size}x{pre.size} (H, W dynamic: {dynamic['height']}), scaled to [0, 1], minus mean, divided by std"},
        "outputs": {
            "logits": {"shape": ["B", len(config.class_names)], "meaning": ("raw logits" + (", the mean of the image's and its mirror's" if pre.flip_average else "")
                                                                               + "; P(fake) = softmax(logits / temperature)[:, 1]")},
            "attention": {"shape": ["B", 1, "H", "W"] if upsample else ["B", 1, "h", "w"],
                          "meaning": "the attention gate in (0, 1): where the model looks, computed before any evidence"},
        },
        "dynamic": dynamic,
        "preprocess": {"size": pre.size, "mean": list(pre.mean), "std": list(pre.std), "crop_scale": pre.crop_scale, "detector": pre.detector,
                       "flip_average": pre.flip_average},
        "class_names": list(config.class_names),
        "temperature": config.temperature,
        "threshold": config.threshold,
        "trained": config.trained,
        "model": config.model,
        "weights_sha256": config.weights_sha256,
        "package_version": __version__,
        "torch_version": torch.__version__,
        "explanations": GRADCAM_NOTE,
    }


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed; ONNX export and its check need: {EXTRA_HINT}") from None


def _export_onnx(wrapper: ExportWrapper, example: torch.Tensor, axes: dict[int, Any], path: Path, metadata: dict[str, Any]) -> None:
    onnx = _require("onnx")
    _require("onnxscript")

    program = torch.onnx.export(
        wrapper, (example,), dynamo=True, verbose=False, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
        dynamic_shapes={"image": axes}, external_data=False, optimize=True,
    )
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))


def load_exported(path: str | Path) -> Callable[[np.ndarray | torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """A function running an exported file on a normalised batch: ONNX with onnxruntime on the CPU,
    or a ``.pt2`` program with torch; it returns ``(logits, attention)`` as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported file not found: {path}")
    if path.suffix == SUFFIXES["onnx"]:
        session = _require("onnxruntime").InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            logits, attention = session.run(list(OUTPUT_NAMES), {INPUT_NAME: _as_batch(image)})
            return logits, attention

        return run_onnx
    if path.suffix == SUFFIXES["exported-program"]:
        module = torch.export.load(str(path)).module()

        def run_program(image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                logits, attention = module(torch.from_numpy(_as_batch(image)))
            return logits.numpy(), attention.numpy()

        return run_program
    raise ValueError(f"{path} is neither .onnx nor .pt2; export it with deepfake_attention.interop.export.export")


def _as_batch(image: np.ndarray | torch.Tensor) -> np.ndarray:
    batch = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return np.ascontiguousarray(batch, dtype=np.float32)


def check_parity(path: str | Path, wrapper: ExportWrapper, *, sizes: tuple[int, ...] | list[int] = (224,), batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> list[dict[str, Any]]:
    """Largest absolute differences between the exported file and ``wrapper`` on random normal
    inputs, for each (batch size, side) pair."""
    run = load_exported(path)
    results = []
    for side in sizes:
        for batch in batch_sizes:
            generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, batch, side]).generate_state(1)[0]))
            image = torch.randn(batch, wrapper.model.input_channels, side, side, generator=generator)
            with torch.no_grad():
                expected_logits, expected_attention = wrapper(image)
            logits, attention = run(image)
            if logits.shape != tuple(expected_logits.shape) or attention.shape != tuple(expected_attention.shape):
                raise ValueError(f"{path} returned shapes {logits.shape}, {attention.shape}; expected {tuple(expected_logits.shape)}, {tuple(expected_attention.shape)}")
            results.append({
                "shape": [batch, wrapper.model.input_channels, side, side],
                "logits_max_abs": float(np.abs(logits - expected_logits.numpy()).max()),
                "attention_max_abs": float(np.abs(attention - expected_attention.numpy()).max()),
            })
    return results
