"""Uniform keyframe sampling over any :class:`~vidhash.video.stream.VideoStream`.

Sample times (seconds on the stream's clock, ``start`` = pts of the first frame):

* ``every=S``: ``start, start+S, start+2S, ...`` while ``< start + duration`` (at least one).
* ``count=N``: ``start + i * duration / N`` for ``i < N`` (the starts of N equal segments).

Which frame a sample time ``t`` delivers:

* ``mode="exact"``: the frame *on screen* at ``t``: the last frame whose pts <= t (1e-4 s
  slack), or the first frame when ``t`` precedes it. The stream seeks to the keyframe at or
  before ``t`` and decodes forward; when the next target lies in the GOP already being
  decoded (no keyframe in between, known from the keyframe map) it keeps decoding
  instead of seeking, so no frame is decoded twice; a target that falls exactly on a
  keyframe is read alone.
* ``mode="fast"``: the keyframe nearest ``t`` (either side; one seek, one decoded frame)
  when it lies within half a sampling step of ``t`` and after the previous sample's frame;
  otherwise that sample falls back to exact. So fast-mode frames are at most ``step/2``
  away from their target (1 s at the default ``--every 2``), and both modes deliver the
  same number of frames on a clean file. Keyframe positions come from the stream's
  keyframe map (a packet scan, no decoding); without one (OpenCV) the keyframe at or
  before ``t`` is tried.

Either way the frame's *true* pts is reported. A file with no duration in its header has
its packets read once (no decoding) to learn it, then is sampled like any other. A file
that stops decoding part way yields every frame obtained and then raises
:class:`~vidhash.errors.DecodeError` with one line saying where and why. Memory stays
bounded: at most two decoded frames are held.

A long video may be sampled as several spans, each its own decode run (on other workers),
whose frames joined are the serial run's (:mod:`vidhash.video.spans`): ``split`` sees the
:class:`~vidhash.video.spans.Timeline` before any decoding and picks the span to decode,
``span`` gives it directly, and ``end`` (a :class:`~vidhash.video.spans.SpanEnd`) receives
how the run ended instead of a DecodeError at the end.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidhash.errors import DecodeError, UsageError
from vidhash.fsutil import keyframe_id
from vidhash.media import read_rgb
from vidhash.transforms import DEFAULT_SIZE, center_crop_resize
from vidhash.video.discover import IMAGE_EXTENSIONS
from vidhash.video.spans import SLACK as _EPS
from vidhash.video.spans import SampleSpan, SeamUnknown, SpanEnd, Timeline, timeline
from vidhash.video.spans import sample_times as sample_times  # public here since ever
from vidhash.video.stream import DecodedFrame, VideoInfo, VideoStream, open_video

MODES = ("fast", "exact")


class _Cursor:
    """Walks one forward decode run, answering "which frame is on screen at t?".

    Holds at most two frames: the last one at or before the previous target, and one
    read past it (kept for the next, later target).
    """

    def __init__(self, frames: Iterator[DecodedFrame]) -> None:
        self._frames = frames
        self.last: DecodedFrame | None = None
        self._ahead: DecodedFrame | None = None
        self.eof = False

    def _next(self) -> DecodedFrame | None:
        if self._ahead is not None:
            frame, self._ahead = self._ahead, None
            return frame
        if self.eof:
            return None
        frame = next(self._frames, None)
        if frame is None:
            self.eof = True
        return frame

    def at(self, t: float) -> DecodedFrame | None:
        while (frame := self._next()) is not None:
            if frame.pts_time <= t + _EPS:
                self.last = frame
                continue
            self._ahead = frame
            return self.last if self.last is not None else frame
        return self.last


@dataclass
class _Run:
    """Bookkeeping shared by the sampling strategies of one video (or one span of it)."""

    stream: VideoStream
    gap_limit: float  # a target further than this past the last frame is unreachable
    duration: float | None = None  # what the header (or a packet scan) promised
    delivered_ms: int | None = None
    problem: str | None = None
    keys: tuple[float, ...] | None = None  # the keyframe map when given (else the stream's)
    floor_ms: int | None = None  # blind span: the prior is unknown, at most this

    def keyframes(self) -> list[float] | tuple[float, ...] | None:
        return self.keys if self.keys is not None else self.stream.keyframe_times()

    def later(self, ms: int) -> bool | None:
        """Is ``ms`` after the last delivered frame? None: a blind span cannot tell."""
        if self.floor_ms is not None:
            return True if ms > self.floor_ms else None
        return self.delivered_ms is None or ms > self.delivered_ms

    def is_new(self, frame: DecodedFrame) -> bool:
        ms = round(frame.pts_time * 1000)
        if self.floor_ms is not None:
            return _known(self.later(ms))
        return ms != self.delivered_ms

    def is_later(self, frame: DecodedFrame) -> bool:
        return _known(self.later(round(frame.pts_time * 1000)))

    def mark(self, frame: DecodedFrame) -> DecodedFrame:
        self.delivered_ms = round(frame.pts_time * 1000)
        self.floor_ms = None  # the span now knows what it delivered
        return frame


def _known(answer: bool | None) -> bool:
    if answer is None:
        raise SeamUnknown
    return answer


def sample_frames(
    stream: VideoStream,
    *,
    every: float | None = 2.0,
    count: int | None = None,
    mode: str = "fast",
    span: SampleSpan | None = None,
    split: Callable[[Timeline], SampleSpan | None] | None = None,
    end: SpanEnd | None = None,
) -> Iterator[DecodedFrame]:
    """Yield the sampled frames of an open stream in time order (see module docstring).

    Raises DecodeError after the last good frame when the file stops decoding part way or
    yields no frame at all; with ``end``, records why in it instead. ``split`` (when no
    ``span``) is called once with the timeline and returns the span to decode (None: all).
    """
    if mode not in MODES:
        raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
    if count is None and (every is None or every <= 0):
        raise UsageError(f"every must be > 0 seconds, got {every}")
    if span is None and split is not None:
        line = timeline(stream, every=every, count=count, mode=mode, keyframes=True)
        span = split(line)
    else:
        line = timeline(stream, every=every, count=count, mode=mode, span=span)
    span = span or SampleSpan()
    info = stream.info
    frame_step = 1.0 / info.frame_rate if info.frame_rate else 0.04
    run = _Run(stream, max(2 * frame_step, line.step / 2), line.duration, span.prior_ms)
    run.keys = line.keyframes
    if span.first > 0 and not span.prior_known:
        run.floor_ms = line.floor_ms(span.first)
    if end is not None:  # known before decoding, so an exception part way still tells
        end.first, end.floor_ms, end.header_problem = span.first, run.floor_ms, info.problem
    yielded = 0
    targets = list(line.times[span.first : span.stop])
    try:
        for frame in _seek_sampling(run, targets, tolerance=line.step / 2, fast=line.fast):
            yielded += 1
            if end is not None:
                end.frames, end.last_ms = yielded, round(frame.pts_time * 1000)
            yield frame
    except SeamUnknown:
        if end is None:
            raise
        end.unresolved = True  # nothing was delivered: the joiner decodes this span again
    if end is not None:
        end.problem = run.problem
        return
    problems = [p for p in (run.problem, info.problem) if p]
    if problems:
        raise DecodeError("; ".join(problems))
    if yielded == 0:
        raise DecodeError("no decodable frames")


def _seek_sampling(
    run: _Run, targets: list[float], *, tolerance: float, fast: bool
) -> Iterator[DecodedFrame]:
    stream = run.stream
    cursor: _Cursor | None = None
    try:
        run.keyframes()  # read (and cache) before any decode run: it rewinds
        for t in targets:
            # Fast mode: the nearest keyframe within tolerance (either side of t). Exact mode:
            # a keyframe *at* t is the frame on screen at t, and reading it alone skips the
            # frames a decoder holds back before its first output.
            limit = tolerance if fast else _EPS
            key_time = _usable_keyframe(run, t, limit)
            if key_time is not None:
                key = stream.read_keyframe(key_time)
                cursor = None  # the decoder is now positioned after a keyframe-only read
                if key is not None and abs(key.pts_time - t) <= limit and run.is_later(key):
                    yield run.mark(key)
                    continue
            if cursor is None or not _can_continue(run, cursor, t):
                stream.seek(t)
                cursor = _Cursor(stream.frames())
            frame = cursor.at(t)
            if frame is None or (cursor.eof and t - frame.pts_time > run.gap_limit):
                end = (
                    "no frame" if frame is None else f"the last frame is at {frame.pts_time:.3f} s"
                )
                run.problem = (
                    f"decoding ended before the sample at {t:.3f} s ({end}; "
                    f"duration {run.duration:.3f} s)"
                )
                return
            if run.is_new(frame):
                yield run.mark(frame)
    except DecodeError as exc:
        run.problem = str(exc)


def _usable_keyframe(run: _Run, t: float, tolerance: float) -> float | None:
    """The time of the keyframe to deliver for ``t``, or None to decode exactly.

    With a keyframe map: the keyframe nearest ``t`` if within ``tolerance`` and later than
    the last delivered frame. Without one: ``t`` itself when fast (``read_keyframe`` then
    finds the keyframe at or before it and the caller checks the distance), else None.
    Deciding from the map saves a wasted seek + decode on long-GOP files and keeps an
    exact decode run going instead of breaking it with a seek. A blind span raises
    SeamUnknown where the choice depends on the frame delivered before it.
    """
    keys = run.keyframes()
    if not keys:
        return t if tolerance > _EPS else None
    i = bisect.bisect_left(keys, t)
    near = [k for k in keys[max(0, i - 1) : i + 1] if abs(k - t) <= tolerance + _EPS]
    verdicts = [(k, run.later(round(k * 1000))) for k in near]
    chosen = _nearest([k for k, later in verdicts if later], t)
    if chosen != _nearest([k for k, later in verdicts if later is not False], t):
        raise SeamUnknown
    return chosen


def _nearest(keys: list[float], t: float) -> float | None:
    return min(keys, key=lambda k: abs(k - t)) if keys else None


def _can_continue(run: _Run, cursor: _Cursor, t: float) -> bool:
    """Is decoding on from the cursor cheaper than seeking (no keyframe before ``t``)?"""
    if cursor.last is None or cursor.eof or cursor.last.pts_time > t + _EPS:
        return False
    here = cursor.last.pts_time
    keys = run.keyframes()
    if keys is None:
        return False  # no keyframe map: seeking is always correct
    i = bisect.bisect_right(keys, here + _EPS)  # first keyframe after the cursor
    return i == len(keys) or keys[i] > t + _EPS


def frame_at(stream: VideoStream, t: float) -> DecodedFrame:
    """The frame on screen at ``t`` (exact mode's rule), for a query; DecodeError if none."""
    step = 1.0 / stream.info.frame_rate if stream.info.frame_rate else 0.04
    run = _Run(stream, gap_limit=2 * step, duration=stream.info.duration or 0.0)
    frame = next(_seek_sampling(run, [t], tolerance=0.0, fast=False), None)
    if frame is None:
        raise DecodeError(run.problem or f"no decodable frame at {t:.3f} s")
    return frame


# -- the per-video generator the ingest and query share -----------------------------


@dataclass(frozen=True)
class Keyframe:
    """One sampled, preprocessed frame of a video, ready to save or to hash."""

    keyframe_id: str
    pts_time: float
    frame_index: int | None
    width: int  # original frame width, upright
    height: int  # original frame height, upright
    rotation: int  # display rotation that was undone (degrees counter-clockwise)
    image: np.ndarray  # size x size x 3 RGB uint8 (center_crop_resize)


def is_image_path(path: str | os.PathLike) -> bool:
    """A still image (one keyframe at pts 0) rather than a video, judged by extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


HEADER_FACTS = ("duration", "frame_rate", "width", "height", "rotation", "codec", "container")


def iter_keyframes(
    path: str | os.PathLike,
    *,
    video_hash: str,
    every: float | None = 2.0,
    count: int | None = None,
    mode: str = "fast",
    backend: str = "pyav",
    size: int = DEFAULT_SIZE,
    facts: dict | None = None,
    span: SampleSpan | None = None,
    split: Callable[[Timeline], SampleSpan | None] | None = None,
    end: SpanEnd | None = None,
) -> Iterator[Keyframe]:
    """Sample, upright and preprocess one video (or a still image: one keyframe at 0).

    Yields keyframes in time order; if decoding fails part way it yields what it got and
    then raises DecodeError with a one-line reason (with ``end``: records it there, see
    :func:`sample_frames`, as are ``span`` and ``split``). ``facts``, when given, receives
    the header facts (:data:`HEADER_FACTS`), read from the one open of the file.
    """
    facts = {} if facts is None else facts
    if is_image_path(path):
        rgb = read_rgb(path)
        facts.update(width=rgb.shape[1], height=rgb.shape[0], rotation=0)
        yield _keyframe(video_hash, 0.0, 0, 0, rgb, size)
        return
    with open_video(path, backend=backend) as stream:
        facts.update({name: getattr(stream.info, name) for name in HEADER_FACTS})
        frames = sample_frames(
            stream, every=every, count=count, mode=mode, span=span, split=split, end=end
        )
        for frame in frames:
            try:
                rgb = frame.rgb()
            except Exception as exc:  # a library error converting pixels of a damaged frame
                raise DecodeError(f"cannot convert frame at {frame.pts_time:.3f} s: {exc}") from exc
            yield _keyframe(
                video_hash, frame.pts_time, frame.frame_index, frame.rotation, rgb, size
            )


def _keyframe(
    video_hash: str, pts_time: float, index: int | None, rotation: int, rgb: np.ndarray, size: int
) -> Keyframe:
    height, width = rgb.shape[:2]
    return Keyframe(
        keyframe_id=keyframe_id(video_hash, pts_time),
        pts_time=pts_time,
        frame_index=index,
        width=width,
        height=height,
        rotation=round(rotation / 90) * 90 % 360,
        image=center_crop_resize(rgb, size),
    )


def probe(path: str | os.PathLike, backend: str = "pyav") -> VideoInfo:
    """Open, read the header facts, close. DecodeError when it is not a readable video."""
    with open_video(path, backend=backend) as stream:
        return stream.info
