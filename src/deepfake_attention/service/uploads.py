"""Uploads: a multipart body read under a byte limit (refusals readable by every client: ``body``),
the file's type told from its bytes, and the client's file name reduced to something safe to echo
(it is never used as a path)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from tempfile import SpooledTemporaryFile

from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..data.media import sniff_kind
from .body import DEFAULT_DISCARD_BYTES, BodyRefused, LimitedBody

FILE_FIELD = "file"
MULTIPART_SLACK = 64 * 1024
"""Bytes of multipart framing (boundaries, part headers) allowed on top of the file size limit."""

# First bytes of the image formats the service decodes; anything else is refused with 415.
_IMAGE_MAGIC = (
    (0, b"\xff\xd8\xff", "jpeg"), (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"GIF87a", "gif"), (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"), (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"), (8, b"WEBP", "webp"),
)
_PNM = re.compile(rb"P[1-6]\s")
# Server-chosen suffixes for video uploads saved to disk (the container is told from its bytes).
_VIDEO_SUFFIX = ((4, b"ftyp", ".mp4"), (0, b"\x1aE\xdf\xa3", ".mkv"), (0, b"RIFF", ".avi"), (0, b"\x00\x00\x01\xba", ".mpg"))
SUPPORTED_IMAGES = "JPEG, PNG, GIF, BMP, TIFF, WebP or PNM"


class RequestError(Exception):
    """A request the service refuses: ``status`` is the HTTP status, ``message`` a sentence for people;
    ``close``: answer with ``Connection: close`` (the body was not read to its end)."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


@dataclass
class Upload:
    """A received file: its bytes in a spooled file (memory, then disk), size, sanitised name and kind."""

    file: SpooledTemporaryFile
    size: int
    filename: str
    kind: str
    """``"image"`` or ``"video"`` (from the bytes)."""
    head: bytes

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def sniff_image(head: bytes) -> str | None:
    """The image format named by the first bytes (``"jpeg"``, ``"png"``, ...), or None."""
    for offset, magic, name in _IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic and (name != "webp" or head[:4] == b"RIFF"):
            return name
    return "pnm" if _PNM.match(head[:3]) else None


def sniff_upload(head: bytes) -> str:
    """``"image"`` or ``"video"`` from a file's first 16+ bytes; :class:`RequestError` 415 otherwise."""
    if sniff_kind(head) == "video":
        return "video"
    if sniff_image(head) is None:
        raise RequestError(415, f"unsupported file type: the bytes are not an image ({SUPPORTED_IMAGES}) nor a video container")
    return "image"


def video_suffix(head: bytes) -> str:
    """A file suffix for a video upload, chosen from its container's magic number."""
    for offset, magic, suffix in _VIDEO_SUFFIX:
        if head[offset : offset + len(magic)] == magic:
            return suffix
    raise ValueError("not a video container")


def safe_filename(name: str | None, limit: int = 120) -> str:
    """The client's file name reduced to its last component of safe characters, for echoing only.

    Directory parts (``/`` or ``\\``), control and unusual characters are removed; ``"upload"``
    when nothing is left. The result is never used to build a path.
    """
    name = unicodedata.normalize("NFKC", name or "")
    name = PurePosixPath(name.replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ()+,]+", "_", name).strip(" ._")
    return name[:limit] or "upload"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


async def read_upload(request: Request, max_bytes: int, *, spool_bytes: int | None = None,
                      discard_bytes: int = DEFAULT_DISCARD_BYTES) -> Upload:
    """Read the multipart field ``file`` of ``request``, refusing more than ``max_bytes`` of file.

    The limit holds while the body streams in, with or without ``Content-Length`` (checked first
    but not trusted): parsing stops past ``max_bytes`` + :data:`MULTIPART_SLACK` with a 413. A
    refused body is read and thrown away up to ``discard_bytes`` past the limit before the answer
    (``Connection: close``), so that clients that send before they read get the 413, not a reset
    (module ``body``). Files up to ``spool_bytes`` (default ``max_bytes``) stay in memory, larger
    ones go to a temporary file. Raises :class:`RequestError` (400, 413, 415).
    """
    body = LimitedBody(request, max_bytes + MULTIPART_SLACK, discard_bytes=discard_bytes)
    try:
        return await _parse(request, body, max_bytes, max_bytes if spool_bytes is None else spool_bytes)
    except RequestError as error:
        if not body.finished:
            await body.discard()
            error.close = True
        raise


async def _parse(request: Request, body: LimitedBody, max_bytes: int, spool_bytes: int) -> Upload:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise RequestError(415, f"send the file as multipart/form-data in a field named '{FILE_FIELD}' (got content type {content_type[:80]!r})")
    too_large = f"the upload is larger than the limit of {_mib(max_bytes)}"
    if body.declared is not None and body.declared > body.limit:
        raise RequestError(413, too_large)
    parser = MultiPartParser(request.headers, body.chunks(), max_files=1, max_fields=8, max_part_size=64 * 1024)
    parser.spool_max_size = spool_bytes
    try:
        form = await parser.parse()
    except BodyRefused:
        raise RequestError(413, too_large) from None
    except MultiPartException as error:
        raise RequestError(400, f"the multipart body could not be read: {error.message}") from None
    upload = form.get(FILE_FIELD)
    for value in form.values():
        if value is not upload and hasattr(value, "close"):
            await value.close()
    if upload is None or isinstance(upload, str):
        raise RequestError(400, f"no file: send it in a multipart field named '{FILE_FIELD}'")
    size = upload.size or 0
    if size > max_bytes:
        await upload.close()
        raise RequestError(413, f"the file is {_mib(size)}, above the limit of {_mib(max_bytes)}")
    upload.file.seek(0)
    head = upload.file.read(64)
    upload.file.seek(0)
    try:
        kind = sniff_upload(head) if size > 0 else "image"  # an empty file gets decode_image's own message (422)
    except RequestError:
        upload.file.close()
        raise
    return Upload(file=upload.file, size=size, filename=safe_filename(upload.filename), kind=kind, head=head)
