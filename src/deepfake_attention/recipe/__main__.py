"""``python -m deepfake_attention.recipe``: the default model's recipe."""

from .run import main

main()
