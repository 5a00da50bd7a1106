"""The one frame source: a work item (or one part of it) -> its keyframes, as events.

:func:`item_events` yields a :class:`Frame` per keyframe (its row, the pixels when a model
still has to see them, the JPEG bytes when images are kept) and then exactly one
:class:`Done` (frames delivered, the one-line error if any, the header facts). It never
raises for bad data: a damaged file gives the frames before the damage and then a Done
whose error says why (:func:`vidhash.errors.error_line`, the one error formatter). Local
threads and Ray workers run this same function, so both deliver the same ids, pixels and JPEG bytes.

A long input may be decoded as parts (:mod:`vidhash.ingest.split`): with ``split``, the
call that opens a whole input hands its timeline to the distributor, which may cut it,
queue the other parts and return the first for this call to decode; with ``part``, one
part is decoded. A part's events carry its index (frames also their place in it), and its
Done its seam facts and, as error, the line the serial run would write if it stopped in
this part; the runner joins the parts (header defects and "no decodable frames" are
decided there, over all of them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vidhash.errors import error_line
from vidhash.ingest.split import Part, span_error
from vidhash.media import encode_jpeg
from vidhash.video.sampling import iter_keyframes
from vidhash.video.spans import SampleSpan, SpanEnd, Timeline

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
    part: int = 0  # which part of a split input (0: the whole input)
    seq: int = 0  # its place among that part's frames


@dataclass
class Done:
    """The end of an input: how many frames were delivered, why it stopped early, facts."""

    path: str
    frames: int
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    part: int = 0
    parts: int = 1  # how many parts the input was cut into (1: decoded whole)
    end: SpanEnd | None = None  # a part's seam facts, for the join (None: decoded whole)


def item_events(
    item: WorkItem,
    options: IngestOptions,
    pixels: bool,
    part: Part | None = None,
    split: Callable[[Timeline], Part | None] | None = None,
) -> Iterator[Frame | Done]:
    """Frames of one input (or ``part``), then its Done. ``pixels``: keep the crops for a
    model. ``split``: called once with a whole video's timeline; returns the part this
    call decodes (the distributor queues the others), or None to decode it whole."""
    facts: dict[str, Any] = {}
    end = SpanEnd()
    chosen = part

    def cut(line: Timeline) -> SampleSpan | None:
        nonlocal chosen
        chosen = split(line) if split is not None else None
        return None if chosen is None else chosen.span

    n = 0
    try:
        keyframes = iter_keyframes(
            item.path,
            video_hash=item.content_hash,
            facts=facts,
            span=None if part is None else part.span,
            split=cut if part is None and split is not None else None,
            end=end,
            **options.sampling(),
        )
        for kf in keyframes:
            row = {
                "keyframe_id": kf.keyframe_id,
                "pts_time": kf.pts_time,
                "frame_index": kf.frame_index,
                "width": kf.width,
                "height": kf.height,
                "rotation": kf.rotation,
            }
            jpeg = encode_jpeg(kf.image, options.jpeg_quality) if options.save_images else None
            index = 0 if chosen is None else chosen.index
            yield Frame(item.path, row, kf.image if pixels else None, jpeg, part=index, seq=n)
            n += 1
    except Exception as exc:  # a damaged file (or a decoder's bug) never stops the batch
        yield _done(item.path, n, error_line(exc), facts, chosen, end)
        return
    yield _done(item.path, n, None, facts, chosen, end)


def _done(
    path: str, n: int, error: str | None, facts: dict, part: Part | None, end: SpanEnd
) -> Done:
    """A whole input's Done with the serial run's error; a part's with its seam facts."""
    if part is None:
        if error is None:
            error = span_error(end.problem, end.header_problem)
        if error is None and n == 0:
            error = "no decodable frames"
        return Done(path, n, error, facts)
    if error is None and end.problem:  # the header's defect alone is the join's to add
        error = span_error(end.problem, end.header_problem)
    return Done(path, n, error, facts, part.index, part.count, end)
