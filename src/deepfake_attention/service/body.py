"""A request body read under a byte limit, and refused in a way every HTTP client can read.

Many clients (Python's ``urllib``, ``requests``, most scripts, browsers' ``fetch``) send the whole
body before they read the response, and never send ``Expect: 100-continue``. A server that
answers early and closes the connection while such a client is still sending makes its kernel
reset the connection: the client sees ``ConnectionResetError`` (a browser: "network error")
instead of the 413. So an oversize body is *read and thrown away* up to a hard cap (the limit
plus ``discard_bytes``, 64 MiB by default), then the 413 goes out with ``Connection: close``.
Beyond the cap the server answers and closes at once; a client still sending may then see a
reset. A client that sent ``Expect: 100-continue`` is answered before any of its body is read
(it waits for our answer before sending, so it is never reset).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

DEFAULT_DISCARD_BYTES = 64 * 2**20
"""Bytes of an oversize (or refused) body read and thrown away past the limit before the answer."""


class BodyRefused(Exception):
    """Raised into the body's reader (a multipart parser) when the body passes its limit."""


class LimitedBody:
    """The body of ``request``, counted as it streams in (``Content-Length`` is not trusted).

    :meth:`chunks` yields it until more than ``limit`` bytes arrived, then raises
    :class:`BodyRefused`; :meth:`discard` reads and drops the rest, up to ``limit + discard_bytes``.
    """

    def __init__(self, request: Request, limit: int, *, discard_bytes: int = DEFAULT_DISCARD_BYTES) -> None:
        self.request, self.limit, self.cap = request, limit, limit + discard_bytes
        self.received = 0
        self.started = False
        """Reading has begun (the server has asked a client that expects 100-continue for its body)."""
        self.finished = False
        self._stream = request.stream()

    @property
    def declared(self) -> int | None:
        """The ``Content-Length`` the client declared, or None (chunked, or not a number)."""
        value = self.request.headers.get("content-length", "")
        return int(value) if value.isdigit() else None

    @property
    def expects_continue(self) -> bool:
        """The client sent ``Expect: 100-continue``: it sends its body only once we ask for it."""
        return self.request.headers.get("expect", "").strip().lower() == "100-continue"

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks; :class:`BodyRefused` once more than ``limit`` bytes arrived."""
        self.started = True
        async for chunk in self._stream:
            self.received += len(chunk)
            if self.received > self.limit:
                raise BodyRefused()
            yield chunk
        self.finished = True

    async def discard(self) -> bool:
        """Read and drop the rest of the body, up to the hard cap. True when the whole body was read
        (the connection can then be answered cleanly), False past the cap or when the client left."""
        if self.finished:
            return True
        if not self.started and self.expects_continue:
            return False  # nothing asked for yet: the client waits for our answer, not to send
        declared = self.declared
        if declared is not None and declared > self.cap:
            return False  # reading it all would pass the cap anyway: answer now
        try:
            async for chunk in self._stream:
                self.received += len(chunk)
                if self.received > self.cap:
                    return False
        except ClientDisconnect:
            return False
        self.finished = True
        return True
