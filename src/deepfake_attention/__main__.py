"""``python -m deepfake_attention``: the same as the ``deepfake-attention`` command."""

import sys

from .cli import main

sys.exit(main())
