"""Generator-fingerprint fakes made from real faces alone (no generated face is used).

- :mod:`.nets`: small encoder-decoders whose decoders up-sample as generators do (four kinds).
- :mod:`.latent`: a TAESD-style latent autoencoder loaded from its weight files.
- :mod:`.training` and ``python -m deepfake_attention.data.generators``: train the small ones once,
  on the training people's faces, keeping those that reach the PSNR floor on held-out people.
- :mod:`.store`: their safetensors + JSON files.
- :mod:`.family`: the fake family itself (:func:`~.family.fingerprint_fake`, :class:`~.family.FingerprintBank`).
"""
