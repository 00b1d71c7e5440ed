"""Structured logs: one JSON object per line, and one ``request`` line per HTTP request.

Log calls pass their fields with ``extra={...}``; the formatter writes them beside time, level,
logger and message. Uploaded bytes never reach a log: requests are logged by method, path,
status and timing, analyses by byte count and SHA-256, and any ``bytes`` value that slips into
a field is written as ``"<N bytes>"``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("deepfake_attention.service")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName", "color_message"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _safe(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line: time (UTC ISO 8601), level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data:
                data[key] = _safe(value) if isinstance(value, (bytes, bytearray, memoryview)) else value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=_safe, ensure_ascii=False)


def configure_logging(level: str = "info") -> None:
    """Send every log record of the process (ours, uvicorn's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class RequestLogMiddleware:
    """Gives each request an id (``X-Request-ID``), adds ``X-Model-Trained`` once the model is loaded,
    ``Cache-Control: no-store`` on the API, a strict CSP on the page, and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        path, start, status = scope.get("path", ""), time.perf_counter(), 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                service = getattr(scope["app"].state, "service", None) if "app" in scope else None
                if service is not None:
                    headers["X-Model-Trained"] = "true" if service.detector.trained else "false"
                if path.startswith("/v1/"):
                    headers["Cache-Control"] = "no-store"
                elif path == "/" or path.startswith("/static/"):
                    for key, value in _PAGE_HEADERS.items():
                        headers[key] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            log.info("request", extra={
                "event": "request", "request_id": request_id, "method": scope.get("method"), "path": path[:200],
                "status": status, "ms": round((time.perf_counter() - start) * 1000, 2),
            })
