"""``deepfake-attention serve``: the service on uvicorn, with JSON-line logs.

Also runnable as ``python -m deepfake_attention.service.serve --model DIR --port 8000``.
Importing this module is cheap (FastAPI and uvicorn load only when serving), so the CLI can
build its parser from :func:`add_arguments`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .settings import TOKEN_ENV, ServiceSettings

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
log = logging.getLogger("deepfake_attention.service")
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False, "timeout_keep_alive": 5, "server_header": False}
"""How ``serve`` runs uvicorn (beyond host and port); tests start the same server on a free port."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve`` (defaults from :class:`ServiceSettings`)."""
    d = ServiceSettings()
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--token", default=None, help=f"bearer token required on every endpoint but /v1/health (default: ${TOKEN_ENV}, else none)")
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-cam", action="store_true", help="skip Grad-CAM++ (attention maps only, faster)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"requests sharing one forward pass, at most (default {d.batch_size})")
    parser.add_argument("--batch-wait-ms", type=float, default=d.batch_wait_ms, help=f"how long a batch waits for more requests (default {d.batch_wait_ms:g} ms)")
    parser.add_argument("--max-concurrent", type=int, default=d.max_concurrent, help=f"requests in flight before 429 (default {d.max_concurrent})")
    parser.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20, help=f"largest image upload in MiB (default {d.max_upload_bytes / 2**20:g})")
    parser.add_argument("--max-job-mb", type=float, default=d.max_job_bytes / 2**20, help=f"largest job (video) upload in MiB (default {d.max_job_bytes / 2**20:g})")
    parser.add_argument("--max-discard-mb", type=float, default=d.max_discard_bytes / 2**20,
                        help=f"MiB of a too-large upload read and thrown away past the limit before the 413, so that every client can read it "
                             f"(default {d.max_discard_bytes / 2**20:g}; beyond it the connection is closed)")
    parser.add_argument("--max-pixels", type=int, default=d.max_pixels, help=f"largest decoded image in pixels (default {d.max_pixels})")
    parser.add_argument("--timeout", type=float, default=d.request_timeout_s, help=f"per-request limit in seconds, then 504 (default {d.request_timeout_s:g})")
    parser.add_argument("--retention", type=float, default=d.retention_s, help=f"seconds job results are kept (default {d.retention_s:g})")
    parser.add_argument("--threads", type=int, default=d.threads, help=f"threads decoding and rendering (default {d.threads})")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads of the model (default: torch's, one per core)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log level (default info)")


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """:class:`ServiceSettings` from parsed flags (token: ``--token``, else the environment)."""
    return ServiceSettings.from_env(
        token=args.token, device=args.device, cam=not args.no_cam, batch_size=args.batch_size, batch_wait_ms=args.batch_wait_ms,
        max_concurrent=args.max_concurrent, max_upload_bytes=int(args.max_upload_mb * 2**20), max_job_bytes=int(args.max_job_mb * 2**20),
        max_discard_bytes=int(args.max_discard_mb * 2**20), max_pixels=args.max_pixels, request_timeout_s=args.timeout, retention_s=args.retention, threads=args.threads,
        torch_threads=args.torch_threads,
    )


def serve(model_dir: str | Path | None, settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve the checkpoint in ``model_dir`` on ``host:port`` until interrupted (blocking)."""
    import uvicorn

    from .app import create_app
    from .logs import configure_logging

    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    configure_logging(log_level)
    if settings.token is None and host not in _LOOPBACK:
        log.warning("listening beyond this machine without a token: anyone who can reach the port can use the service; "
                    f"pass --token or set ${TOKEN_ENV}", extra={"event": "no_token", "host": host})
    uvicorn.run(create_app(model_dir, settings), host=host, port=port, **UVICORN_OPTIONS)


def run_from_args(args: argparse.Namespace) -> int:
    """The ``serve`` subcommand: returns the exit code."""
    serve(args.model, settings_from_args(args), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-attention serve", description="the web service and analyst page")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except ValueError as error:
        print(f"deepfake-attention serve: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
