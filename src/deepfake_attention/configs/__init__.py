"""Training configurations shipped with the package (TOML files read with ``importlib.resources``),
such as ``default_model.toml``, the default model's recipe configuration."""
