"""``ServiceSettings``: every limit and knob of the web service, validated on construction."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..data.media import DEFAULT_MAX_PIXELS

TOKEN_ENV = "DEEPFAKE_ATTENTION_TOKEN"
"""Environment variable read for the bearer token when none is given explicitly."""
MIN_TOKEN_LENGTH = 16
_MAX_JOB_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and knobs of ``deepfake-attention serve`` (all sizes in bytes, all times in seconds
    unless the name says otherwise).

    Requests beyond ``max_concurrent`` in flight are refused with 429 (the bounded queue); a request
    that takes longer than ``request_timeout_s`` from the start of its upload gets 504.
    """

    max_upload_bytes: int = 20 * 2**20
    """Largest image accepted by ``POST /v1/analyze``; enforced while reading the body (413)."""
    max_job_bytes: int = 200 * 2**20
    """Largest file accepted by ``POST /v1/jobs`` (videos are bigger than images)."""
    max_discard_bytes: int = 64 * 2**20
    """Bytes of a refused upload read and thrown away past the limit before the 413 (with
    ``Connection: close``), so that clients which send the whole body before reading the answer
    (``urllib``, browsers) get it instead of a reset connection. A body longer than the limit plus
    this is answered and closed at once (such clients may then see a reset). Clients that send
    ``Expect: 100-continue`` are answered before their body is read."""
    max_pixels: int = DEFAULT_MAX_PIXELS // 2
    """Largest decoded image in pixels; larger ones are refused as decompression bombs (422)."""
    batch_size: int = 8
    """Dynamic batching: at most this many requests share one forward pass."""
    batch_wait_ms: float = 10.0
    """Dynamic batching: how long the first request of a batch waits for company, in milliseconds."""
    max_concurrent: int = 32
    """Requests admitted at once (reading, decoding, waiting for the model, rendering); more get 429."""
    request_timeout_s: float = 60.0
    """Per-request limit on ``POST /v1/analyze`` (504 when exceeded)."""
    retention_s: float = 600.0
    """Jobs: the upload is deleted when its analysis ends, the result this long after that."""
    max_jobs: int = 16
    """Jobs kept at once (queued, running or finished and not yet expired); more get 429."""
    token: str | None = None
    """Bearer token required on every endpoint but ``/v1/health`` (None: no authentication)."""
    device: str = "auto"
    """Torch device of the model: ``auto``, ``cpu`` or ``cuda``."""
    cam: bool = True
    """Compute Grad-CAM++ (False: attention maps only, faster)."""
    threads: int = 2
    """Worker threads for decoding, face detection and PNG rendering (the model has its own thread)."""
    torch_threads: int | None = None
    """Torch intra-op threads of the model (None: torch's default, one per core). Fewer can be faster
    when the cores are shared with decoding, rendering or other processes."""
    jobs_dir: str | None = None
    """Folder for job uploads and results (None: a fresh temporary folder removed at shutdown)."""

    def __post_init__(self) -> None:
        positive_ints = ("max_upload_bytes", "max_job_bytes", "max_discard_bytes", "max_pixels", "batch_size", "max_concurrent", "max_jobs", "threads")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.torch_threads is not None and (isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 1):
            raise ValueError(f"torch_threads must be a positive integer or None, got {self.torch_threads!r}")
        if self.max_job_bytes > _MAX_JOB_BYTES:
            raise ValueError(f"max_job_bytes must be <= {_MAX_JOB_BYTES} (512 MiB), got {self.max_job_bytes}")
        for name in ("request_timeout_s", "retention_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ValueError(f"batch_wait_ms must be in [0, 1000] milliseconds, got {self.batch_wait_ms!r}")
        if self.token is not None:
            if len(self.token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in self.token) or not self.token.isprintable():
                raise ValueError(
                    f"token must be at least {MIN_TOKEN_LENGTH} printable characters without spaces; "
                    "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )

    @classmethod
    def from_env(cls, **values: Any) -> "ServiceSettings":
        """Settings from keyword values; ``token`` falls back to ``$DEEPFAKE_ATTENTION_TOKEN`` when not
        given (or None). An empty environment variable means no token."""
        if values.get("token") is None:
            values["token"] = os.environ.get(TOKEN_ENV) or None
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The settings without the token (safe to log or return)."""
        data = dataclasses.asdict(self)
        data["token"] = "set" if self.token else None
        return data
