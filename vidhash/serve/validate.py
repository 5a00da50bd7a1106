"""Request validation: every refusal is an :class:`ApiError` with a status and one line.

Contracts:

* Keyframe ids are ``<16 hex>-<milliseconds, 9+ digits>`` (``vidhash.fsutil.keyframe_id``)
  and video ids 64 hex digits; anything else is refused before any lookup.
* :func:`keyframe_image_path` never joins request text into a path: the name must be
  exactly ``<keyframe id>.jpg``, the file is the ``image_path`` the index recorded for that
  keyframe, and the resolved file must lie inside the (resolved) index folder. ``..``,
  slashes (plain or encoded), backslashes and absolute paths are refused with 400.
"""

from __future__ import annotations

import re
from pathlib import Path

KEYFRAME_ID = re.compile(r"[0-9a-f]{16}-[0-9]{9,15}")
VIDEO_ID = re.compile(r"[0-9a-f]{64}")
MAX_K = 1000
MAX_REASON = 300


class ApiError(Exception):
    """A refused request: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = one_line(message)


def one_line(text: str) -> str:
    """A message on one line, short enough to read in a status bar."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


def keyframe_id(text: str, what: str = "keyframe") -> str:
    """A syntactically valid keyframe id, or a 400."""
    if not KEYFRAME_ID.fullmatch(text):
        raise ApiError(
            400, f"{what} must be a keyframe id like 0123456789abcdef-000012000, got {text!r:.60}"
        )
    return text


def video_id(text: str) -> str:
    if not VIDEO_ID.fullmatch(text):
        raise ApiError(400, f"video id must be 64 hex digits, got {text!r:.80}")
    return text


def keyframe_image_name(name: str, raw_path: bytes) -> str:
    """The keyframe id in ``<id>.jpg``; path tricks are refused with a reason."""
    raw = raw_path.lower()
    if b"%2f" in raw or b"%5c" in raw:
        raise ApiError(400, "encoded slashes are not allowed in a keyframe image name")
    if name.startswith("/") or "/" in name or "\\" in name or ".." in name:
        raise ApiError(400, "a keyframe image is named <keyframe id>.jpg, with no path in it")
    if not name.endswith(".jpg"):
        raise ApiError(400, f"a keyframe image is named <keyframe id>.jpg, got {name!r:.60}")
    return keyframe_id(name[: -len(".jpg")])


def keyframe_image_path(root: Path, recorded: str | None, kid: str) -> Path:
    """The JPEG the index recorded for a keyframe, checked to lie inside the index."""
    if not recorded:
        raise ApiError(404, f"keyframe {kid} has no stored image (indexed with --no-images)")
    base = root.resolve()
    path = (base / recorded).resolve()
    if not path.is_relative_to(base):
        raise ApiError(403, f"the image recorded for keyframe {kid} lies outside the index")
    if not path.is_file():
        raise ApiError(404, f"the image of keyframe {kid} is missing from the index folder")
    return path


def clock(seconds: float) -> str:
    """h:mm:ss.mmm, as the page and the CLI show times."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"
