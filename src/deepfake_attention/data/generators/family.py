"""The generator-fingerprint fake family: a real face round-tripped through one decoder of a bank.

No face is generated and none is pasted: the fake is the real face as a generator's decoder
would render it, so it carries that decoder's up-sampling trace everywhere and has no localised
mask (the mask loss and the localisation metrics skip it). Every choice derives from
``(seed, index[, epoch])`` like the blend families: which decoder, whether the real counterpart
is softened (so that softness is not the cue: a decoder blurs a little, and reals get a blur or a
resampling of the same strength as often as not), then the same down-sampling / JPEG / resize for
fake and real (:func:`~..synth.postprocess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from torch import nn

from ..synth import SynthConfig, SynthSample, check_face, family_config, postprocess, sample_rng
from ..synth_ops import resize_to
from .latent import DOWNSAMPLE, LatentAutoencoder
from .nets import FACTOR
from .store import decoder_kind, list_decoders, load_decoder
from .training import round_trip

LATENT = "latent"
"""The bank's name of the latent autoencoder (when one is loaded)."""
SOFTEN_PROB = 0.5
"""How often the real counterpart is softened (blur or down-up resampling)."""


class FingerprintBank:
    """Named decoders that round-trip an RGB uint8 face (small fingerprint autoencoders, the latent one)."""

    def __init__(self, decoders: Mapping[str, nn.Module], *, latent_share: float | None = None) -> None:
        if not decoders:
            raise ValueError("a fingerprint bank needs at least one decoder")
        self.decoders = dict(sorted(decoders.items()))
        if latent_share is not None and (LATENT not in self.decoders or len(self.decoders) < 2 or not 0.0 < latent_share < 1.0):
            raise ValueError(f"latent_share must be in (0, 1) and needs the latent autoencoder beside other decoders, got {latent_share} "
                             f"for a bank of {self.names}")
        self.latent_share = latent_share

    @classmethod
    def load(cls, folder: str | Path | None, *, names: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
             latent: tuple[str | Path, str | Path] | None = None, latent_share: float | None = None) -> "FingerprintBank":
        """The decoders stored in ``folder`` (all, the ``names`` given, or those whose up-sampling is in
        ``kinds``), plus the latent autoencoder of the (encoder, decoder) files ``latent`` as :data:`LATENT`
        (drawn for ``latent_share`` of the fakes; None: as often as each other decoder)."""
        available = list_decoders(folder) if folder is not None else []
        chosen = list(names) if names is not None else [n for n in available if kinds is None or decoder_kind(n) in kinds]
        missing = [n for n in chosen if n not in available]
        if missing:
            raise FileNotFoundError(f"fingerprint decoders {missing} are not in {folder} (it has {available})")
        decoders: dict[str, nn.Module] = {name: load_decoder(folder, name) for name in chosen}  # type: ignore[arg-type]
        if latent is not None:
            decoders[LATENT] = LatentAutoencoder.from_files(*latent)
        return cls(decoders, latent_share=latent_share)

    @property
    def names(self) -> list[str]:
        return list(self.decoders)

    def draw(self, rng: np.random.Generator) -> str:
        """A decoder's name: uniform over the bank, or the latent autoencoder with probability ``latent_share``."""
        if self.latent_share is None:
            return self.names[int(rng.integers(len(self.names)))]
        if rng.random() < self.latent_share:
            return LATENT
        others = [n for n in self.names if n != LATENT]
        return others[int(rng.integers(len(others)))]

    def round_trip(self, name: str, face: np.ndarray) -> np.ndarray:
        """``face`` through decoder ``name``, same size, 8 bits."""
        model = self.decoders[name]
        return round_trip(model, face, DOWNSAMPLE if isinstance(model, LatentAutoencoder) else FACTOR)


SOFTEST = 0.5
"""The default smallest down-up factor of :func:`soften` (blur sigma up to ``0.6 / SOFTEST`` = 1.2 px)."""


def check_softest(value: float, name: str = "softest") -> float:
    """``value`` as a float when it is a valid ``softest`` of :func:`soften` (in (0, 0.85)), else a ``ValueError`` naming ``name``."""
    if not 0.0 < value < 0.85:
        raise ValueError(f"{name} must be in (0, 0.85), got {value}")
    return float(value)


def soften(image: np.ndarray, rng: np.random.Generator, softest: float = SOFTEST) -> tuple[np.ndarray, dict[str, Any]]:
    """A Gaussian blur (sigma 0.4 to ``0.6 / softest`` px) or a down-up resampling (factor ``softest``-0.85), half and half.

    The default (0.5: sigma 0.4-1.2, factor 0.5-0.85) matches a decoder's softness; a smaller
    ``softest`` also covers faces as soft as small faces cut from a group photo and enlarged."""
    check_softest(softest)
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        sigma = float(rng.uniform(0.4, 0.6 / softest))
        return cv2.GaussianBlur(image, (0, 0), sigma), {"blur_sigma": sigma}
    factor = float(rng.uniform(softest, 0.85))
    small = resize_to(image, (max(8, round(width * factor)), max(8, round(height * factor))))
    return resize_to(small, (width, height)), {"resample": factor}


def fingerprint_fake(face: np.ndarray, seed: int, index: int, bank: FingerprintBank, *, decoder: str | None = None,
                     config: SynthConfig | None = None, epoch: int | None = None, soften_prob: float = SOFTEN_PROB) -> SynthSample:
    """A fingerprint fake of ``face`` (RGB uint8) and its real counterpart, post-processed alike.

    ``decoder`` fixes the bank's decoder (held-out sets of one decoder type); by default it is drawn.
    The mask and boundary are all zero: the trace is everywhere, nothing is localised."""
    check_face(face)
    config = config or family_config("sbi")
    rng = sample_rng(seed, index, epoch)
    name = decoder if decoder is not None else bank.draw(rng)
    if name not in bank.decoders:
        raise ValueError(f"decoder {name!r} is not in the bank ({bank.names})")
    params: dict[str, Any] = {"family": "fingerprint", "seed": int(seed), "index": int(index), "epoch": epoch, "decoder": name}
    fake = bank.round_trip(name, face)
    real = face
    if rng.random() < soften_prob:
        real, params["soften"] = soften(face, rng)
    (fake, real), params["post"] = postprocess([fake, real], rng, config)
    empty = np.zeros(fake.shape[:2], np.float32)
    return SynthSample(image=fake, real=real, target=real, mask=empty, boundary=empty, params=params)
