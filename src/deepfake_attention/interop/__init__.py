"""Talking to other systems: a checkpoint in, artefacts for other code out.

- ``features``: per face, the 512-d features, calibrated score and attention map as ``.npz``
  (for fusion with other detectors of a multi-modal engine);
- ``export``: the detector (logits and attention map) as ONNX or a ``torch.export`` program,
  with parity checks against PyTorch.
"""
