"""One video's sample times cut into spans that decode on their own, so one long file can
keep several workers busy and still give the serial run's frames.

A span is samples ``[first, stop)`` of the video's sample times
(:func:`sample_times`, here with :func:`timeline`): it seeks to its first sample and samples
only its own times. Sampling carries one fact from sample to sample: the last frame it
delivered (fast mode takes a keyframe only when it is later than that frame; both modes
drop a frame equal to it). So a span's frames are the serial run's frames for its samples
once it knows that fact at its start, its *prior*:

* The first span knows it (nothing delivered yet); a span decoded again after its
  predecessors is given it (``prior_known``).
* Any other span starts *blind* and assumes only that the prior lies at or before its
  :meth:`Timeline.floor_ms` (the latest a frame for the previous sample can lie: ``t +
  step/2`` in fast mode, ``t`` in exact mode, plus 0.1 ms). While blind, a decision that
  would depend on more than that raises :class:`SeamUnknown` before any frame is delivered;
  the first delivered frame ends the blindness.

:class:`SpanEnd` reports what the joiner checks: the floor assumed and the last frame
delivered. Where a span was unresolved, or the frame really delivered before it lies past
its floor (a decoder whose seek overshoots), the joiner decodes the rest of the video
again as one span with the prior known; so the joined frames are always the serial run's.
:func:`cut` places the cuts near even shares, preferring samples where the serial run
seeks anyway and where the keyframe map shows no decision can depend on the prior, and
never inside the serial run's first decode run (:func:`first_cut`: its frame numbers are
counted from the first frame, a span's are derived from pts). Without a keyframe map a
video is not cut.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidhash.errors import DecodeError, UsageError

if TYPE_CHECKING:
    from vidhash.video.stream import VideoStream

SLACK = 1e-4  # seconds of slack when comparing pts with a target (ids are in ms)


class SeamUnknown(Exception):  # noqa: N818 - a signal between sampling and its caller
    """A blind span's next decision depends on the frame delivered before it."""


@dataclass(frozen=True)
class SampleSpan:
    """Samples ``[first, stop)`` of a video (``stop`` None: to the end), decoded as one run.

    ``duration`` and ``keyframes`` are the whole video's, as whoever cut it read them
    (None: read them again from the stream), so a span does not scan the file again.
    """

    first: int = 0
    stop: int | None = None
    prior_known: bool = True  # False: blind, the prior only bounded by the floor
    prior_ms: int | None = None  # the last frame delivered before ``first`` (when known)
    duration: float | None = None
    keyframes: tuple[float, ...] | None = None


@dataclass
class SpanEnd:
    """How a span's decode run ended (filled in by sampling), for whoever joins spans."""

    first: int = 0  # the span's first sample
    frames: int = 0  # frames it delivered
    last_ms: int | None = None  # the last of them, ms (None: it delivered none)
    floor_ms: int | None = None  # the bound it assumed on its prior (None: prior known)
    problem: str | None = None  # why it stopped early (decoding ended or failed)
    header_problem: str | None = None  # a defect seen before decoding (VideoInfo.problem)
    unresolved: bool = False  # stopped at once: decode again with the prior known


@dataclass(frozen=True)
class Timeline:
    """What sampling knows of a video before decoding: sample times, step, keyframes."""

    times: tuple[float, ...]
    step: float  # seconds between samples (fast mode's tolerance is half of it)
    fast: bool
    duration: float
    keyframes: tuple[float, ...] | None  # the keyframe map (None: unknown)

    def floor_ms(self, first: int) -> int:
        """The latest (ms) a frame delivered for the samples before ``first`` can lie, on a
        decoder whose seeks land at or before their target."""
        reach = self.step / 2 if self.fast else 0.0
        return round((self.times[first - 1] + reach + SLACK) * 1000)

    def clean_seam(self, first: int) -> bool:
        """No keyframe that sample ``first`` may take lies at or before the floor (so fast
        mode's choice cannot depend on the prior), and one lies after the previous sample
        (so the serial run seeks here too: no frame is decoded twice)."""
        keys = self.keyframes
        if not keys:
            return False
        t, floor = self.times[first], self.floor_ms(first)
        reach = self.step / 2 + SLACK if self.fast else SLACK
        low = bisect.bisect_left(keys, t - reach)
        if low < len(keys) and round(keys[low] * 1000) <= floor:
            return False
        i = bisect.bisect_right(keys, self.times[first - 1] + SLACK)
        return i < len(keys) and keys[i] <= t + SLACK


def sample_times(
    start: float, duration: float, *, every: float | None = 2.0, count: int | None = None
) -> list[float]:
    """The uniform sample times for a stream starting at ``start`` lasting ``duration`` s."""
    if count is not None:
        if count < 1:
            raise UsageError(f"count must be >= 1, got {count}")
        return [start + i * duration / count for i in range(count)]
    if every is None or every <= 0:
        raise UsageError(f"every must be > 0 seconds, got {every}")
    n = max(1, math.ceil(duration / every - 1e-9))
    return [start + i * every for i in range(n)]


def timeline(
    stream: VideoStream,
    *,
    every: float | None = 2.0,
    count: int | None = None,
    mode: str = "fast",
    span: SampleSpan | None = None,
    keyframes: bool = False,
) -> Timeline:
    """The video's sample times, step and (``keyframes``, or from ``span``) keyframe map.

    DecodeError when a file without a duration in its header has no frame at all.
    """
    info = stream.info
    duration = span.duration if span is not None else None
    if duration is None:
        duration = info.duration
    if duration is None:
        # No duration in the header: read the packets once (no decoding) to learn it, so
        # sampling is the same as for any other file.
        duration = stream.scan_duration()
        if duration is None:
            raise DecodeError("no decodable frames")
    times = sample_times(info.start_time, duration, every=every, count=count)
    step = duration / count if count is not None else float(every)
    keys = span.keyframes if span is not None else None
    if keys is None and keyframes:
        try:
            keys = tuple(stream.keyframe_times() or ()) or None
        except DecodeError:
            keys = None  # the decode run meets (and reports) the same failure
    return Timeline(tuple(times), step, mode == "fast", duration, keys)


def first_cut(line: Timeline) -> int | None:
    """The first sample a span may start at: one where the serial run has left the decode
    run it began at the first frame, whose frame numbers are counted rather than derived
    from pts; a keyframe between two samples ends that run (None: no such sample)."""
    keys = line.keyframes or ()
    for j in range(1, len(line.times)):
        i = bisect.bisect_right(keys, line.times[j - 1] + 2 * SLACK)
        if i < len(keys) and keys[i] <= line.times[j] + SLACK:
            return j
    return None


def cut(line: Timeline, parts: int, min_samples: int) -> list[SampleSpan]:
    """Up to ``parts`` spans of at least ``min_samples`` samples each ([] when under two,
    or without a keyframe map).

    Each cut is the clean seam (:meth:`Timeline.clean_seam`) nearest an even share, within
    a quarter share of it; else the even share itself (still exact, maybe slower).
    """
    n = len(line.times)
    parts = min(parts, n // max(1, min_samples))
    start = first_cut(line) if parts >= 2 else None
    if start is None:
        return []
    share = n / parts
    window = max(1, int(share / 4))
    edges = [0]
    for k in range(1, parts):
        ideal = round(k * share)
        low, high = max(edges[-1] + 1, start), n - 1
        if low > high:
            break
        near = sorted(range(ideal - window, ideal + window + 1), key=lambda i: abs(i - ideal))
        seams = [i for i in near if low <= i <= high and line.clean_seam(i)]
        edges.append(seams[0] if seams else min(max(ideal, low), high))
    edges.append(n)
    if len(edges) < 3:
        return []
    return [
        SampleSpan(
            first=a,
            stop=None if b == n else b,
            prior_known=a == 0,
            duration=line.duration,
            keyframes=line.keyframes,
        )
        for a, b in zip(edges, edges[1:], strict=False)
    ]
