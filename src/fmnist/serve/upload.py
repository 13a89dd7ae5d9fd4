"""Request bodies to image bytes, in memory: the size limit enforced while the body streams in, multipart parsed.

A body is refused (413) from its Content-Length before it is read, or as soon as the bytes streamed exceed the
limit; a body that trickles in slower than the timeout is refused with 408. Nothing is ever written to disk
(Starlette's form parser spools large files to temporary files; this one keeps every part in memory, which the
byte limit bounds). A request is either multipart/form-data with one or more file parts, or the bytes of one
image as the body (Content-Type image/* or application/octet-stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from fmnist.serve.errors import ServeError, bad_request, too_large

# A body refused before it was read in full leaves the rest of it on the connection, where it would be taken for
# the next request: the connection is closed after the answer.
CLOSE = {"Connection": "close"}

IMAGE_FIELD = b"image"  # the form field that carries images (any part with a file name counts as one too)
MAX_FIELDS = 1000  # parts of any kind in one form (file parts are limited by ServeSettings.max_images)

# The parser logs each malformed body it meets as a warning, with no request or time beside it; the client is
# told in its 400 answer, so the service's log leaves these out.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


@dataclass
class Upload:
    """One uploaded image: its file name (as sent; never used as a path) and its bytes."""

    filename: str
    data: bytes


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole request body, at most `limit` bytes, read within `timeout_s` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request(f"Content-Length {declared[:40]!r} is not a number of bytes")
        if int(declared) > limit:
            raise ServeError(413, "request_too_large", f"the request is {int(declared):,} bytes; the limit is "
                             f"{limit:,}", CLOSE)

    body = bytearray()
    try:
        async with deadline_after(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise ServeError(413, "request_too_large", f"the request is over the limit of {limit:,} bytes",
                                     CLOSE)
    except asyncio.TimeoutError:
        raise ServeError(408, "request_timeout", f"the request body did not arrive within {timeout_s:g} s",
                         CLOSE) from None
    return bytes(body)


@asynccontextmanager
async def deadline_after(seconds: float) -> AsyncIterator[None]:
    """Cancel the block and raise asyncio.TimeoutError after `seconds` (asyncio.timeout where there is one: it
    creates no task, unlike wait_for, which matters at thousands of requests per second)."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            yield
        return
    task = asyncio.current_task()
    handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
    try:
        yield
    except asyncio.CancelledError:
        if handle.cancelled() or not _fired(handle):
            raise
        raise asyncio.TimeoutError() from None
    finally:
        handle.cancel()


def _fired(handle: asyncio.TimerHandle) -> bool:
    return handle.when() <= asyncio.get_running_loop().time()


def parse_uploads(content_type: str, body: bytes, max_images: int) -> list[Upload]:
    """The images of a request body: the file parts of a multipart form, or the body itself."""
    kind, options = parse_options_header(content_type or "")
    kind = kind.lower()
    if kind == b"multipart/form-data":
        uploads = _multipart(body, options.get(b"boundary"), max_images)
    elif kind.startswith(b"image/") or kind in (b"application/octet-stream", b""):
        uploads = [Upload("image", body)] if body else []
    else:
        raise ServeError(415, "unsupported_media_type", f"send images as multipart/form-data or as an image body "
                         f"(Content-Type image/...), not {kind.decode('latin-1')[:60]}")
    if not uploads:
        raise bad_request("the request holds no image; send one or more image files (multipart field 'image')")
    return uploads


def _multipart(body: bytes, boundary: bytes | None, max_images: int) -> list[Upload]:
    if not boundary:
        raise bad_request("multipart/form-data without a boundary in its Content-Type")
    parts: list[dict] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_part_begin() -> None:
        if len(parts) >= MAX_FIELDS:
            raise bad_request(f"the form has more than {MAX_FIELDS} parts")
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"].clear()
        header["value"].clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(parts[-1]["headers"].get(b"content-disposition", b""))
        filename = options.get(b"filename")
        if filename is None and options.get(b"name") == IMAGE_FIELD:
            filename = IMAGE_FIELD  # the image as a plain field (`curl -F 'image=<shoe.png'`): taken all the same
        parts[-1]["filename"] = None if filename is None else filename.decode("utf-8", "replace")
        if filename is not None and sum(p.get("filename") is not None for p in parts) > max_images:
            raise too_large("too_many_images", f"the request holds more than {max_images} images; send at most "
                            f"{max_images} per request")

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_part_data": lambda data, start, end: parts[-1]["data"].extend(data[start:end]),
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_end": lambda: ended.append(True),
    }
    ended: list[bool] = []
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, FormParserError) as e:  # FormParserError: e.g. a boundary over 256 bytes
        raise bad_request(f"the multipart body is malformed ({str(e)[:200]})") from None
    if not ended:  # its last part would be cut short: an image that is not whole is no image to judge
        raise bad_request("the multipart body is incomplete: it ends before its closing boundary (was the upload "
                          "cut short, or its Content-Length too small?)")
    return [Upload(p["filename"] or "image", bytes(p["data"])) for p in parts if p.get("filename") is not None]
