"""The installed package's version (a leaf: imports nothing of the package)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepfake-attention")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
