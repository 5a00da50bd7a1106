"""Reading an uploaded image with a hard size limit.

Contract: :func:`read_image_field` returns the bytes and file name of the multipart field
``image``, or raises ``ApiError`` with one line: 413 once the request body passes
``max_bytes`` (checked against Content-Length first, then counted as the body streams in,
so a client that lies or sends chunks is cut off at the limit, not buffered whole), 415
for a body that is not multipart/form-data, 400 for a form without the field.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

from vidhash.serve.validate import ApiError

FIELD = "image"


class _TooLarge(Exception):
    pass


def _limited(receive: Receive, max_bytes: int) -> Receive:
    seen = 0

    async def receive_limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise _TooLarge
        return message

    return receive_limited


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the upload is larger than the limit of {max_bytes / 2**20:g} MiB")


async def read_image_field(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """(bytes, file name) of the ``image`` field of a multipart upload of at most max_bytes."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"send the image as multipart/form-data in a field named {FIELD!r}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    limited = Request(request.scope, _limited(request.receive, max_bytes))
    try:
        form = await limited.form(max_files=1, max_fields=16)
    except _TooLarge:
        raise _too_large(max_bytes) from None
    try:
        field = form.get(FIELD)
        if not isinstance(field, UploadFile):
            raise ApiError(400, f"no file in the multipart field {FIELD!r}")
        data = await field.read()
        return data, field.filename
    finally:
        await form.close()
