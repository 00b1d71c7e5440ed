"""The shipped default model's recipe: real faces in, a calibrated, evaluated checkpoint out.

It sits on top of the other stages (it prepares data with ``data``, trains with ``train``,
calibrates and evaluates with ``evaluate``) so that ``train`` never depends on ``evaluate``.

- ``run``: prepare the data, train, calibrate, evaluate, install (``python -m deepfake_attention.recipe``);
- ``model_card``: the card written beside the installed weights.
"""
