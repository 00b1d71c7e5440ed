"""The shipped default model: loads strictly, is trained and calibrated, and ranks clear self-blended
fakes of the demo photo above the photo itself (what `make demo` shows; the photo is one of its
training identities, the blends are new). Its numbers are not pinned (it may be retrained)."""

from __future__ import annotations

from deepfake_attention import Detector
from deepfake_attention.data.faces import find_faces
from deepfake_attention.data.media import read_image
from deepfake_attention.demo import blended_photos, sample_photo


def test_shipped_model_is_trained_and_calibrated() -> None:
    detector = Detector.load(device="cpu")
    config = detector.config
    assert config.trained and config.model["trunk"] == "mobilenet_v2_s8"
    assert 0.5 <= config.temperature <= 5.0 and 0.0 < config.threshold < 1.0
    assert config.preprocess.detector == "haar" and config.preprocess.crop_scale == 1.3
    assert config.info["calibration"]["target_fpr"] == 0.05


def test_clear_fakes_score_above_their_real_source() -> None:
    detector = Detector.load(device="cpu")
    pre = detector.config.preprocess
    photo = read_image(sample_photo())

    def score(image):
        faces = find_faces(image, pre)
        assert len(faces) == 1
        return detector.predict([faces[0].crop], cam=False)[0].prob_fake

    real = score(photo)
    fakes = [score(fake) for fake, _ in blended_photos(photo, 3)]
    assert min(fakes) > real, (real, fakes)
