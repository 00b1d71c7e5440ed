"""The service over a real socket: ``deepfake-attention serve``'s uvicorn server on a free port of
127.0.0.1, driven by clients nobody here wrote (``urllib``, ``httpx``, raw ``http.client``).

TestClient never opens a socket, so it cannot see what these clients see: a server that answers
an oversize upload before reading it, and closes, resets clients that send their whole body first.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra: pip install 'deepfake-attention[serve]'")
import httpx
import uvicorn

from deepfake_attention.service import ServiceSettings, create_app
from deepfake_attention.service.serve import UVICORN_OPTIONS

from .conftest import make_checkpoint, random_rgb

BOUNDARY = "deepfakeattentionboundary"
BIG = 60_000_000
"""The issue's upload: 60 MB against the default 20 MiB image limit (below the 64 MiB discard cap)."""
JOB_LIMIT = 2 * 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(model: Path, **settings: object) -> Iterator[str]:
    """The real server (``serve``'s uvicorn options) in a thread; yields its base URL."""
    port = free_port()
    app = create_app(model, ServiceSettings(device="cpu", threads=1, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Default upload limit (20 MiB) and discard cap (64 MiB); jobs limited to 2 MiB to stay light."""
    with live_server(make_checkpoint(tmp_path_factory.mktemp("http") / "ckpt"), max_job_bytes=JOB_LIMIT) as url:
        yield url


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(48, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart_parts(size: int, name: str = "big.png") -> Iterator[bytes]:
    """A multipart body with one file field of ``size`` bytes (a PNG signature, then zeros), in 1 MiB pieces."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
           "Content-Type: image/png\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n"
    left = size - 8
    piece = bytes(2**20)
    while left > 0:
        yield piece[: min(left, len(piece))]
        left -= len(piece)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def urllib_post(url: str, data: bytes | Iterator[bytes]) -> tuple[int, dict, str | None]:
    """(status, JSON body, Connection header) of a POST with ``urllib`` (bytes: Content-Length; an iterator: chunked)."""
    request = urllib.request.Request(url, data=data, headers=HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), response.headers.get("connection")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("connection")


def assert_too_large(status: int, body: dict, connection: str | None, limit: str) -> None:
    assert status == 413, (status, body)
    assert body == {"detail": f"the upload is larger than the limit of {limit}"}
    assert connection is not None and connection.lower() == "close"


def test_urllib_gets_413_not_a_reset_for_a_declared_length(base_url: str) -> None:
    status, body, connection = urllib_post(f"{base_url}/v1/analyze", b"".join(multipart_parts(BIG)))
    assert_too_large(status, body, connection, "20.0 MiB")
    ok = urllib_post(f"{base_url}/v1/analyze", b"".join(multipart_parts(0, "x.png")).replace(b"\x89PNG\r\n\x1a\n", png_bytes()))
    assert ok[0] == 200 and ok[1]["status"] == "ok"  # the server goes on serving


def test_urllib_chunked_upload_is_cut_at_the_limit(base_url: str) -> None:
    status, body, connection = urllib_post(f"{base_url}/v1/analyze", multipart_parts(BIG))  # an iterator: Transfer-Encoding: chunked
    assert_too_large(status, body, connection, "20.0 MiB")


def test_httpx_declared_and_chunked(base_url: str) -> None:
    with httpx.Client(timeout=120) as client:
        declared = client.post(f"{base_url}/v1/analyze", content=b"".join(multipart_parts(BIG)), headers=HEADERS)
        assert "content-length" in {k.lower() for k in declared.request.headers}
        assert_too_large(declared.status_code, declared.json(), declared.headers.get("connection"), "20.0 MiB")
        chunked = client.post(f"{base_url}/v1/analyze", content=multipart_parts(BIG), headers=HEADERS)
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert_too_large(chunked.status_code, chunked.json(), chunked.headers.get("connection"), "20.0 MiB")
        files = {"file": ("x.png", png_bytes(), "image/png")}
        assert client.post(f"{base_url}/v1/analyze", files=files).status_code == 200


def test_jobs_413_for_declared_and_chunked(base_url: str) -> None:
    size = 3 * JOB_LIMIT
    assert_too_large(*urllib_post(f"{base_url}/v1/jobs", b"".join(multipart_parts(size))), "2.0 MiB")
    assert_too_large(*urllib_post(f"{base_url}/v1/jobs", multipart_parts(size)), "2.0 MiB")
    with httpx.Client(timeout=120) as client:
        chunked = client.post(f"{base_url}/v1/jobs", content=multipart_parts(size), headers=HEADERS)
        assert_too_large(chunked.status_code, chunked.json(), chunked.headers.get("connection"), "2.0 MiB")


def test_expect_100_continue_is_answered_before_the_body(base_url: str) -> None:
    """A client that asks first gets the 413 without sending a byte of its body."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/v1/analyze")
        connection.putheader("Content-Type", HEADERS["Content-Type"])
        connection.putheader("Content-Length", str(BIG))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()  # no body sent
        response = connection.getresponse()
        assert response.status == 413 and response.getheader("connection") == "close"
        assert json.loads(response.read()) == {"detail": "the upload is larger than the limit of 20.0 MiB"}
    finally:
        connection.close()
