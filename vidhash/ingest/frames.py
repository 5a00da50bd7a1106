"""The one frame source: a work item -> its keyframes, as events a runner consumes.

:func:`item_events` yields a :class:`Frame` per keyframe (its row, the pixels when a model
still has to see them, the JPEG bytes when images are kept) and then exactly one
:class:`Done` (frames delivered, the one-line error if any, the header facts). It never
raises for bad data: a damaged file gives the frames before the damage and then a Done
whose error says why (:func:`error_line`, the one error formatter). Local threads and Ray
workers run this same function, so both deliver the same ids, pixels and JPEG bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vidhash.errors import DecodeError, InputError
from vidhash.media import encode_jpeg
from vidhash.video.sampling import iter_keyframes

if TYPE_CHECKING:
    from vidhash.ingest.options import IngestOptions
    from vidhash.ingest.plan import WorkItem


@dataclass
class Frame:
    """One keyframe of an input: its row, and pixels/JPEG/code as the stage needs them."""

    path: str
    row: dict[str, Any]
    image: np.ndarray | None = None
    jpeg: bytes | None = None
    code: bytes | None = None
    descriptor: bytes | None = None  # float16, little-endian (a model with a descriptor)


@dataclass
class Done:
    """The end of an input: how many frames were delivered, why it stopped early, facts."""

    path: str
    frames: int
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def error_line(exc: BaseException) -> str:
    """One line for a videos row: our errors in their own words, others with their type."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror}"
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if isinstance(exc, DecodeError | InputError):
        return text or "decode error"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def item_events(item: WorkItem, options: IngestOptions, pixels: bool) -> Iterator[Frame | Done]:
    """Frames of one input, then its Done. ``pixels``: keep the crops for a model."""
    facts: dict[str, Any] = {}
    sampling = options.sampling()
    n = 0
    try:
        for kf in iter_keyframes(item.path, video_hash=item.content_hash, facts=facts, **sampling):
            row = {
                "keyframe_id": kf.keyframe_id,
                "pts_time": kf.pts_time,
                "frame_index": kf.frame_index,
                "width": kf.width,
                "height": kf.height,
                "rotation": kf.rotation,
            }
            jpeg = encode_jpeg(kf.image, options.jpeg_quality) if options.save_images else None
            n += 1
            yield Frame(item.path, row, kf.image if pixels else None, jpeg)
    except Exception as exc:  # a damaged file (or a decoder's bug) never stops the batch
        yield Done(item.path, n, error_line(exc), facts)
        return
    yield Done(item.path, n, None, facts)
