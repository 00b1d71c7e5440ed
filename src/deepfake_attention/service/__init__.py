"""The web service and analyst page (``deepfake-attention serve``; needs the ``serve`` extra).

``create_app(model_dir, settings)`` builds the FastAPI application; ``serve(...)`` runs it on
uvicorn. Importing this package does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import TOKEN_ENV, ServiceSettings

if TYPE_CHECKING:
    from .app import create_app
    from .serve import serve

__all__ = ["TOKEN_ENV", "ServiceSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .serve import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
