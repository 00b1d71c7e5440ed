"""Generator-fingerprint fakes: the small fingerprint autoencoders, their store, the latent autoencoder and the family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_attention.data.generators.family import LATENT, FingerprintBank, fingerprint_fake
from deepfake_attention.data.generators.latent import LatentAutoencoder
from deepfake_attention.data.generators.nets import UPSAMPLERS, FingerprintAutoencoder
from deepfake_attention.data.generators.store import list_decoders, load_decoder, save_decoder
from deepfake_attention.data.generators.training import TrainSettings, psnr, round_trip, train_decoder
from deepfake_attention.data.synth import family_config

from .conftest import SHARED_DATA

GENERATORS = SHARED_DATA / "generators"


def _faces(count: int, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Smooth random images (a learnable, face-like statistic: most energy at low frequencies)."""
    import cv2

    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC) for _ in range(count)]


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_every_upsampler_gives_back_the_input_size(kind: str) -> None:
    model = FingerprintAutoencoder(kind, width=8, latent=4)
    assert model(torch.rand(2, 3, 24, 36)).shape == (2, 3, 24, 36)
    assert FingerprintAutoencoder(**model.get_config()).get_config() == {"upsampler": kind, "width": 8, "latent": 4}
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, 3, 22, 36))
    with pytest.raises(ValueError, match="unknown up-sampling"):
        FingerprintAutoencoder("lanczos")


def test_round_trip_pads_odd_sizes_and_psnr_matches_its_definition() -> None:
    face = _faces(1, size=37)[0][:, :35]
    out = round_trip(nn.Identity(), face)
    assert out.shape == face.shape and np.array_equal(out, face)
    other = face.astype(int)
    other[0, 0, 0] = (other[0, 0, 0] + 100) % 256
    mse = ((face.astype(float) - other) ** 2).mean()
    assert psnr(face, other.astype(np.uint8)) == pytest.approx(10 * np.log10(255**2 / mse))
    assert psnr(face, face) == float("inf")


def test_training_learns_to_reconstruct_and_the_store_round_trips(tmp_path: Path) -> None:
    train, heldout = _faces(24, seed=1), _faces(4, seed=2)
    untrained = np.mean([psnr(f, round_trip(FingerprintAutoencoder("nearest", width=8, latent=4).eval(), f)) for f in heldout])
    model, result = train_decoder(train, heldout, "nearest", 0, TrainSettings(steps=150, batch_size=8, patch=32, lr=3e-3, width=8, latent=4), progress=False)
    assert result.psnr_mean > untrained + 5, (untrained, result)  # learning; the 28 dB floor is the command's, on real faces
    assert result.heldout_faces == 4 and result.psnr_min <= result.psnr_mean
    save_decoder(model, tmp_path, "nearest-s0", result.record())
    assert list_decoders(tmp_path) == ["nearest-s0"]
    loaded = load_decoder(tmp_path, "nearest-s0")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    record = json.loads((tmp_path / "nearest-s0.json").read_text())
    assert record["config"] == {"upsampler": "nearest", "width": 8, "latent": 4} and record["psnr_floor"] == 28.0
    (tmp_path / "nearest-s0.safetensors").write_bytes((tmp_path / "nearest-s0.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_decoder(tmp_path, "nearest-s0")


def test_latent_autoencoder_loads_its_layout_strictly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LatentAutoencoder(latent_channels=8, group_norm=True)
    torch.save(model.encoder.state_dict(), tmp_path / "enc.pth")
    torch.save(model.decoder.state_dict(), tmp_path / "dec.pth")
    loaded = LatentAutoencoder.from_files(tmp_path / "enc.pth", tmp_path / "dec.pth")
    assert loaded.latent_channels == 8 and loaded.group_norm and set(loaded.sha256) == {"encoder", "decoder"}
    x = torch.rand(1, 3, 20, 28)  # not a multiple of 8: padded, then cropped back
    with torch.no_grad():
        assert loaded(x).shape == x.shape and float(loaded(x).min()) >= 0.0
    torch.save(LatentAutoencoder(8, group_norm=False).encoder.state_dict(), tmp_path / "plain.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        LatentAutoencoder.from_files(tmp_path / "plain.pth", tmp_path / "dec.pth")


@pytest.mark.skipif(not (GENERATORS / "taef2_decoder.pth").is_file(), reason="the shared latent autoencoder is not beside this checkout")
def test_shared_latent_autoencoder_reconstructs_a_real_photo() -> None:
    from skimage import data

    model = LatentAutoencoder.from_files(GENERATORS / "taef2_encoder.pth", GENERATORS / "taef2_decoder.pth")
    assert model.latent_channels == 32 and model.group_norm
    face = data.astronaut()[40:232, 160:352]
    assert psnr(face, round_trip(model, face, 8)) > 28.0


def test_fingerprint_fakes_are_deterministic_unmasked_and_post_processed_like_their_real() -> None:
    face = _faces(1, size=48)[0]
    config = family_config("sbi", jpeg_prob=1.0, downscale_prob=1.0)
    identity = FingerprintBank({"identity": nn.Identity()})
    sample = fingerprint_fake(face, 3, 5, identity, config=config, soften_prob=0.0)
    # an identity 'decoder' with the same post-processing: fake and real are the same pixels
    assert np.array_equal(sample.image, sample.real) and not np.array_equal(sample.image, face)
    assert not sample.mask.any() and not sample.boundary.any() and sample.params["decoder"] == "identity"
    assert sample.params["post"]["jpeg_quality"] and sample.params["post"]["downscale"]
    bank = FingerprintBank({"a": FingerprintAutoencoder("transposed", 8, 4).eval(), "b": FingerprintAutoencoder("bilinear", 8, 4).eval()})
    first, again = fingerprint_fake(face, 3, 5, bank), fingerprint_fake(face, 3, 5, bank)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.real, again.real) and first.params == again.params
    drawn = {fingerprint_fake(face, 3, k, bank).params["decoder"] for k in range(12)}
    assert drawn == {"a", "b"}
    softened = [fingerprint_fake(face, 3, k, bank, soften_prob=1.0).params["soften"] for k in range(8)]
    assert {next(iter(s)) for s in softened} == {"blur_sigma", "resample"}
    assert fingerprint_fake(face, 3, 5, bank, decoder="b").params["decoder"] == "b"
    with pytest.raises(ValueError, match="not in the bank"):
        fingerprint_fake(face, 3, 5, bank, decoder="c")


def test_soften_reaches_down_to_its_softest_factor() -> None:
    from deepfake_attention.data.generators.family import soften

    face = _faces(1, size=64)[0]
    draws = {softest: [soften(face, np.random.default_rng(k), softest)[1] for k in range(200)] for softest in (0.5, 0.25)}
    for softest, params in draws.items():
        factors = [p["resample"] for p in params if "resample" in p]
        sigmas = [p["blur_sigma"] for p in params if "blur_sigma" in p]
        assert factors and sigmas and min(factors) >= softest and max(factors) <= 0.85
        assert min(sigmas) >= 0.4 and max(sigmas) <= 0.6 / softest
    # the default is the softness of a decoder; a quarter also covers enlarged small faces
    assert min(p["resample"] for p in draws[0.25] if "resample" in p) < 0.5
    assert max(p["blur_sigma"] for p in draws[0.25] if "blur_sigma" in p) > 1.2
    # the default draws exactly what it drew before the option (the ablation's earlier runs): blur 0.4-1.2 or factor 0.5-0.85
    for k in range(20):
        rng = np.random.default_rng(k)
        before = {"blur_sigma": float(rng.uniform(0.4, 1.2))} if rng.random() < 0.5 else {"resample": float(rng.uniform(0.5, 0.85))}
        assert soften(face, np.random.default_rng(k))[1] == before
    blurred, params = soften(face, np.random.default_rng(0), 0.25)
    assert blurred.shape == face.shape and blurred.dtype == np.uint8 and not np.array_equal(blurred, face)
    for bad in (0.0, 0.85, 1.2):
        with pytest.raises(ValueError, match="softest must be in"):
            soften(face, np.random.default_rng(0), bad)


def test_blended_faces_mix_in_fingerprint_fakes_without_masks(tmp_path: Path) -> None:
    from PIL import Image

    from deepfake_attention.data.face_records import FaceRecord
    from deepfake_attention.data.synth_dataset import BlendedFaceDataset

    records = []
    for k, face in enumerate(_faces(3, size=48)):
        Image.fromarray(face).save(tmp_path / f"f{k}.png")
        records.append(FaceRecord(str(tmp_path / f"f{k}.png"), (8, 8, 40, 40)))
    bank = FingerprintBank({"a": FingerprintAutoencoder("pixelshuffle", 8, 4).eval()})
    plain = BlendedFaceDataset(records, size=32)
    every = BlendedFaceDataset(records, size=32, fingerprint=bank, fingerprint_prob=1.0)
    half = BlendedFaceDataset(records, size=32, fingerprint=bank, fingerprint_prob=0.5)
    assert [every[i]["has_mask"] for i in range(6)] == [True, False] * 3
    assert all(not every[i]["mask"].any() for i in range(1, 6, 2))
    assert not torch.equal(every[0]["image"], plain[0]["image"])  # reals softened as often as fakes are fingerprints
    mixed = [half[i]["has_mask"] for i in range(1, 6, 2)] + [BlendedFaceDataset(records, size=32, fingerprint=bank, fingerprint_prob=0.5, seed=s)[1]["has_mask"] for s in range(1, 9)]
    assert True in mixed and False in mixed
    with pytest.raises(ValueError, match="needs a fingerprint bank"):
        BlendedFaceDataset(records, fingerprint_prob=0.5)
    with pytest.raises(ValueError, match="softest must be in"):
        BlendedFaceDataset(records, fingerprint=bank, fingerprint_prob=0.5, softest=0.9)
    from deepfake_attention.train import load_config

    with pytest.raises(ValueError, match="synth.fingerprint_softest must be in"):
        load_config(None, ["synth.fingerprint_softest=0.0"])


def test_fingerprint_held_out_sets_have_no_masks(tmp_path: Path) -> None:
    from PIL import Image

    from deepfake_attention.data.face_records import FaceRecord
    from deepfake_attention.data.manifest import read_manifest
    from deepfake_attention.data.synth_writer import write_fakes

    records = []
    for k, face in enumerate(_faces(2, size=48)):
        Image.fromarray(face).save(tmp_path / f"f{k}.png")
        records.append(FaceRecord(str(tmp_path / f"f{k}.png"), (8, 8, 40, 40)))
    bank = FingerprintBank({"a": FingerprintAutoencoder("bilinear", 8, 4).eval(), "b": FingerprintAutoencoder("nearest", 8, 4).eval()})
    write_fakes(records, tmp_path / "set", per_face=1, seed=4, family="fingerprint", config=family_config("fingerprint"), bank=bank, decoder="b")
    rows = read_manifest(tmp_path / "set" / "manifest.csv")
    assert [row.is_fake for row in rows] == [False, True, False, True] and all(not row.mask for row in rows)
    params = [json.loads(line) for line in (tmp_path / "set" / "params.jsonl").read_text().splitlines()]
    assert {p["decoder"] for p in params} == {"b"} and not (tmp_path / "set" / "masks").exists()


def test_stored_decoders_load_and_round_trip_a_new_face_above_the_floor() -> None:
    from importlib import resources

    from skimage import data

    from deepfake_attention.data.generators.store import read_record
    from deepfake_attention.data.generators.training import PSNR_FLOOR

    folder = Path(str(resources.files("deepfake_attention") / "weights" / "fingerprints"))
    names = list_decoders(folder)
    assert {name.rsplit("-s", 1)[0] for name in names} == set(UPSAMPLERS) and len(names) >= 2 * len(UPSAMPLERS)
    face = data.astronaut()[40:232, 160:352]  # a person none of them was trained or measured on
    for name in names:
        record = read_record(folder, name)
        assert record["psnr_mean"] >= PSNR_FLOOR and record["heldout_faces"] == 64, name
        model = load_decoder(folder, name)
        assert model.upsampler == name.rsplit("-s", 1)[0]
        assert psnr(face, round_trip(model, face)) >= PSNR_FLOOR, name


def test_latent_share_draws_the_latent_autoencoder_that_often_and_none_keeps_the_uniform_draw() -> None:
    decoders = {name: nn.Identity() for name in ("a", "b", "c", LATENT)}
    uniform, shared = FingerprintBank(decoders), FingerprintBank(decoders, latent_share=0.5)
    draws = [shared.draw(np.random.default_rng(k)) for k in range(4000)]
    assert abs(draws.count(LATENT) / len(draws) - 0.5) < 0.03
    assert {name: draws.count(name) for name in "abc"} == pytest.approx({name: len(draws) / 6 for name in "abc"}, rel=0.12)
    # None is the draw every earlier run made: one integer over the bank's sorted names
    assert [uniform.draw(np.random.default_rng(k)) for k in range(50)] == [uniform.names[int(np.random.default_rng(k).integers(4))] for k in range(50)]
    for bad in ({"share": 1.0, "bank": decoders}, {"share": 0.3, "bank": {"a": nn.Identity()}}, {"share": 0.3, "bank": {LATENT: nn.Identity()}}):
        with pytest.raises(ValueError, match="latent_share"):
            FingerprintBank(bad["bank"], latent_share=bad["share"])
