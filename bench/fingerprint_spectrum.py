"""Is a decoder's fingerprint in the spectrum? A linear probe on log-power spectra, per held-out decoder kind.

The CNN arms of ``bench/fingerprints.py`` tell held-out up-sampling kinds from reals (0.84-0.93)
but barely the latent autoencoder's round trips (0.56-0.60, trained on or not). This bench asks
whether the evidence is there at all, with no CNN: each crop, resized to the model's input as the
detector resizes it, gives a log-power spectrum (grey, Hann window) summarised as its azimuthal
profile (Durall et al., CVPR 2020) and a coarse grid of cell energies and peaks (periodic
up-sampling leaves off-axis peaks that a profile smears); a standardised logistic regression is
trained on the training people's faces, each a real counterpart (softened as often as not, then
the same down-sampling and JPEG as its fake) and its fingerprint fake, as training makes them.
Probes: ``latent`` (its round trips only), ``minus-<kind>`` (the three other kinds' decoders),
``all`` (every decoder). Each is scored on the test people's sets that ``bench/fingerprints.py``
writes (the same files): AUC of each set's reals against its fakes, per crop and per unit (one
score per person per file), so the figures sit beside the CNN's. ``--clean`` drops the down-sampling
and JPEG after the round trip (training and test pairs, the test pairs then made here) and
``--size`` sets the side the spectrum is taken at (320: the stored crops as they are): do the
post-processing or the resize to the model's input hide a fingerprint?

    python bench/fingerprint_spectrum.py --prepared runs/default-model/data --decoders src/deepfake_attention/weights/fingerprints \\
        --latent ../shared/data/generators/taef2_encoder.pth ../shared/data/generators/taef2_decoder.pth --work runs/fingerprints
    python bench/fingerprint_spectrum.py ... --clean --size 320 --probes latent,minus-bilinear --out bench/results/fingerprint-spectrum-clean-320.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from fingerprints import SET_SEED, write_sets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from deepfake_attention.data.face_records import read_faces
from deepfake_attention.data.generators.family import LATENT, FingerprintBank, fingerprint_fake
from deepfake_attention.data.generators.nets import UPSAMPLERS
from deepfake_attention.data.generators.store import decoder_kind
from deepfake_attention.data.manifest import read_manifest
from deepfake_attention.data.media import read_image
from deepfake_attention.data.synth import family_config
from deepfake_attention.data.transforms import resize_square
from deepfake_attention.metrics.classification import auc_roc
from deepfake_attention.recipe.faces import FaceInfo
from deepfake_attention.recipe.units import average_units, unit_keys

SIZE = 224
"""The default model's input side: crops are resized to it as the detector resizes them."""
PROFILE_BINS = 64
GRID = 14
"""The log-power spectrum is cut into GRID x GRID cells (16 x 16 frequencies each at 224)."""
TRAIN_SEED = 7007


def spectrum_features(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Azimuthal profile of the log-power spectrum (``PROFILE_BINS``), then per grid cell its mean and max log power."""
    grey = resize_square(image, size).astype(np.float64).mean(axis=2) / 255.0
    grey -= grey.mean()
    window = np.outer(np.hanning(size), np.hanning(size))
    log_power = np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey * window))) ** 2 + 1e-10)
    rows, cols = np.indices(log_power.shape)
    radius = np.hypot(rows - size // 2, cols - size // 2) / (size / 2)
    ring = np.minimum((radius * PROFILE_BINS).astype(int), PROFILE_BINS)  # the corners beyond radius 1 fall in the dropped last bin
    counts = np.bincount(ring.ravel(), minlength=PROFILE_BINS + 1)[:PROFILE_BINS]
    profile = np.bincount(ring.ravel(), log_power.ravel(), minlength=PROFILE_BINS + 1)[:PROFILE_BINS] / np.maximum(counts, 1)
    cell = size // GRID
    cells = log_power[: cell * GRID, : cell * GRID].reshape(GRID, cell, GRID, cell)
    return np.concatenate([profile, cells.mean(axis=(1, 3)).ravel(), cells.max(axis=(1, 3)).ravel()])


def pairs(faces: list, bank: FingerprintBank, names: list[str], seed: int, *, size: int, clean: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and source crops of one (real counterpart, fingerprint fake) pair per face, the
    decoder drawn from ``names``; ``clean``: no down-sampling or JPEG after the round trip (the reals still softened)."""
    features, labels, paths = [], [], []
    rng = np.random.default_rng(seed)
    config = family_config("fingerprint", **({"jpeg_prob": 0.0, "downscale_prob": 0.0} if clean else {}))
    for index, face in enumerate(tqdm(faces, desc=f"pairs {'+'.join(sorted({decoder_kind(n) if n != LATENT else n for n in names}))}", unit="face")):
        name = names[int(rng.integers(len(names)))]
        sample = fingerprint_fake(read_image(face.crop), seed, index, bank, decoder=name, config=config)
        features += [spectrum_features(sample.real, size), spectrum_features(sample.image, size)]
        labels += [0, 1]
        paths += [face.crop, face.crop]
    return np.stack(features), np.asarray(labels), paths


def set_features(manifest: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and crop paths of a test set's rows."""
    rows = read_manifest(manifest)
    features = [spectrum_features(read_image(row.path), size) for row in tqdm(rows, desc=f"features {manifest.parent.name}", unit="crop")]
    return np.stack(features), np.asarray([int(row.is_fake) for row in rows]), [row.path for row in rows]


def unit_auc(paths: list[str], labels: np.ndarray, scores: np.ndarray, faces: list[FaceInfo]) -> float:
    """AUC over units (one score per person per file: the mean of its crops' scores), as the recipe measures."""
    keys, groups = unit_keys(paths, labels, faces)
    units = average_units(keys, groups, scores)
    return float(auc_roc(np.asarray([u.fake for u in units], int), np.asarray([u.prob for u in units])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="a recipe's prepared data folder")
    parser.add_argument("--decoders", type=Path, required=True, help="folder of fingerprint decoders")
    parser.add_argument("--latent", nargs=2, required=True, metavar=("ENCODER", "DECODER"), help="weight files of the latent autoencoder")
    parser.add_argument("--work", type=Path, default=Path("runs/fingerprints"), help="where bench/fingerprints.py writes (or wrote) its test sets")
    parser.add_argument("--train-faces", type=int, default=250, help="training people's faces per probe (evenly spaced; default 250)")
    parser.add_argument("--size", type=int, default=SIZE, help=f"side the crops are resized to before the spectrum (default {SIZE}, the model's input)")
    parser.add_argument("--clean", action="store_true",
                        help="no down-sampling or JPEG after the round trip, in training and test pairs (the test pairs made here, not read from --work)")
    parser.add_argument("--probes", default=None, help="comma-separated subset of latent, minus-<kind>, all (default: every probe)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fingerprint-spectrum.json"), help="the record (committed)")
    args = parser.parse_args()
    faces = [FaceInfo(**face) for face in json.loads((args.prepared / "faces.json").read_text())["faces"]]
    train_faces = read_faces(args.prepared / "faces-train")
    train_faces = [train_faces[int(i)] for i in np.linspace(0, len(train_faces) - 1, min(args.train_faces, len(train_faces)))]
    bank = FingerprintBank.load(args.decoders, latent=tuple(args.latent))
    kinds = {kind: [n for n in bank.names if n != LATENT and decoder_kind(n) == kind] for kind in UPSAMPLERS}
    probes = {"latent": [LATENT], **{f"minus-{k}": [n for other, names in kinds.items() if other != k for n in names] for k in UPSAMPLERS},
              "all": bank.names}
    if args.probes:
        probes = {name: probes[name] for name in args.probes.split(",")}
    if args.clean:
        test_faces = read_faces(args.prepared / "faces-test")
        members = {**{f"fp_{k}": names for k, names in kinds.items()}, "fp_latent": [LATENT]}
        tests = {name: pairs(test_faces, bank, names, SET_SEED + offset, size=args.size, clean=True) for offset, (name, names) in enumerate(members.items())}
    else:
        sets = write_sets(args.prepared, args.decoders, tuple(args.latent), args.work / "sets")
        tests = {name: set_features(manifest, args.size) for name, manifest in sets.items()}
    record: dict = {"train_faces": len(train_faces), "size": args.size, "clean": args.clean,
                    "features": f"profile {PROFILE_BINS} + grid {GRID}x{GRID} mean and max", "probes": {}}
    for offset, (probe, names) in enumerate(probes.items()):
        x, y, _ = pairs(train_faces, bank, names, TRAIN_SEED + offset, size=args.size, clean=args.clean)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)).fit(x, y)
        record["probes"][probe] = {"decoders": names, "train_auc": float(auc_roc(y, model.decision_function(x))), "sets": {}}
        for name, (features, labels, paths) in tests.items():
            scores = 1.0 / (1.0 + np.exp(-model.decision_function(features)))
            record["probes"][probe]["sets"][name] = {"auc_crops": float(auc_roc(labels, scores)), "auc_units": unit_auc(paths, labels, scores, faces)}
        print(probe, {k: round(v["auc_units"], 3) for k, v in record["probes"][probe]["sets"].items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(table(record))
    return 0


def table(record: dict) -> str:
    """Markdown: one row per probe, per-unit AUC of each test set (held-out ones in bold)."""
    sets = list(next(iter(record["probes"].values()))["sets"])
    lines = ["| probe | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for probe, result in record["probes"].items():
        trained = {f"fp_{decoder_kind(n)}" if n != LATENT else "fp_latent" for n in result["decoders"]}
        cells = [f"{result['sets'][s]['auc_units']:.3f}" if s in trained or not s.startswith("fp_") else f"**{result['sets'][s]['auc_units']:.3f}**"
                 for s in sets]
        lines.append(f"| {probe} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nAUC over units of each set's reals against its fakes; bold: a fingerprint set the probe never trained on."


if __name__ == "__main__":
    sys.exit(main())
