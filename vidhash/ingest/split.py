"""A long input split by time across workers, and joined back into the serial run's rows.

Why: one file decodes on one core; a long one left the other cores idle. Contract:

* **Cutting.** Whoever opens a whole input first (a local decode thread; a Ray task in a
  first pass) learns its sample times and keyframe map and, when there are at least two
  spans of ``min_span`` samples, cuts it (:func:`cut_parts`, the rule in
  :mod:`vidhash.video.spans`) into up to ``PARTS_PER_WORKER`` parts per worker. Each
  :class:`Part` is decoded by :func:`vidhash.ingest.frames.item_events` on its own: seek to
  its first sample, sample its own times. Its :class:`~vidhash.ingest.frames.Done` carries
  its frame count, its index among ``parts`` and its seam facts (``end``).
* **Joining** (:class:`Pending`, in the runner). Frames may arrive in any order and
  interleaved; each carries its part and place, so the rows are put back in serial order.
  When every part is done (all its frames in, all codes back), :func:`join` walks the
  parts in order, as the serial run would: it keeps each part's rows, and stops after the
  first part that ended early (damage): the serial run stops there too, so rows of later
  parts are dropped even where those decoded fine, and the input's status and one-line
  error are exactly the serial run's. A part whose seam does not hold (it was unresolved,
  or the frame before it lies past the floor it assumed) is not kept: the rest of the
  input, from that part's first sample, is decoded again as one more part with the
  frame before it known (:meth:`Distributor.redo`), so the result is still the serial one.
* **Images** written for rows the join drops are deleted, unless another committed input
  has the same content (its images share the folder, and may be those very files).
  Memory stays bounded: frames stream through; only rows wait.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidhash.errors import DecodeError, error_line
from vidhash.video.spans import SampleSpan, SpanEnd, Timeline, cut

if TYPE_CHECKING:
    from vidhash.ingest.frames import Done, Frame
    from vidhash.ingest.options import IngestOptions
    from vidhash.ingest.plan import WorkItem

PARTS_PER_WORKER = 2  # several parts per worker even out slow and fast ones
MIN_SPAN = 8  # samples per part at least: each part opens the file once


@dataclass(frozen=True)
class Part:
    """One span of a split input: which one of how many, and its samples."""

    index: int
    count: int
    span: SampleSpan


def cut_parts(line: Timeline, workers: int, min_span: int = MIN_SPAN) -> list[Part]:
    """The parts to cut a video into for ``workers`` decoders ([] to decode it whole)."""
    if workers < 2:
        return []
    spans = cut(line, workers * PARTS_PER_WORKER, min_span)
    return [Part(i, len(spans), span) for i, span in enumerate(spans)]


def plan_parts(
    item: WorkItem, options: IngestOptions, workers: int, min_span: int = MIN_SPAN
) -> list[Part]:
    """Open a video, read its timeline and cut it (for an engine that cuts before decoding).

    [] for a still image, a short video, or one that does not open (decoded whole, it
    reports its own error).
    """
    from vidhash.video.spans import timeline
    from vidhash.video.stream import open_video

    if item.kind != "video" or workers < 2:
        return []
    sampling = options.sampling()
    how = {name: sampling[name] for name in ("every", "count", "mode")}
    try:
        with open_video(item.path, backend=sampling["backend"]) as stream:
            line = timeline(stream, keyframes=True, **how)
    except Exception:  # noqa: BLE001 - whatever it is, the whole-input decode reports it
        return []
    return cut_parts(line, workers, min_span)


@dataclass
class Joined:
    """What an input's parts add up to: the rows to commit, its error, what to drop."""

    rows: list[dict[str, Any]]
    error: str | None
    facts: dict[str, Any]
    dropped: list[str]  # images written for rows it did not keep (relative paths)


@dataclass
class Pending:
    """An input in flight: its rows per part, its parts' Dones, codes still owed."""

    item: WorkItem
    rows: dict[int, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    dones: dict[int, Done] = field(default_factory=dict)
    waiting: int = 0
    redoing: bool = False

    def add(self, frame: Frame, row: dict[str, Any]) -> None:
        """A frame's row, under its part and place in it."""
        self.rows.setdefault(frame.part, []).append((frame.seq, row))

    def ready(self) -> bool:
        """Every part (and the redo, once asked for) done, with all its frames and codes."""
        if self.waiting or not self.dones:
            return False
        count = next(iter(self.dones.values())).parts
        needed = range(count + 1) if self.redoing else range(count)
        return all(
            i in self.dones and len(self.rows.get(i, ())) >= self.dones[i].frames for i in needed
        )

    def join(self) -> Joined | Part:
        """The input's rows and error as the serial run gives them, or the Part to redo."""
        kept = join_parts(self.dones)
        if isinstance(kept, Part):
            return kept
        rows = [row for i in kept for _, row in sorted(self.rows.get(i, []), key=_seq)]
        ids = {row["keyframe_id"] for row in rows}
        dropped = [
            row["image_path"]
            for i, pairs in self.rows.items()
            if i not in kept
            for _, row in pairs
            if row.get("image_path") and row["keyframe_id"] not in ids
        ]
        done = self.dones[kept[-1]]
        error = done.error if done.end is None else _joined_error(self.dones, kept)
        return Joined(rows, error, self.dones[0].facts or done.facts, dropped)


def _seq(pair: tuple[int, dict[str, Any]]) -> int:
    return pair[0]


def join_parts(dones: dict[int, Done]) -> list[int] | Part:
    """The parts whose rows the serial run has, in order; or the Part to decode again.

    Walks the parts as the serial run samples: the first whose seam does not hold (see the
    module docstring) is replaced by the redo (index ``count``); the walk stops after the
    first part that ended with an error.
    """
    count = next(iter(dones.values())).parts
    kept: list[int] = []
    prior: int | None = None
    for i in range(count):
        done = dones[i]
        end = done.end
        if end is not None and not _seam_holds(end, prior):
            if count not in dones:
                span = SampleSpan(first=end.first, prior_known=True, prior_ms=prior)
                return Part(count, count, span)  # the redo: one more part
            return [*kept, count]
        kept.append(i)
        if end is not None and end.last_ms is not None:
            prior = end.last_ms
        if done.error:
            break
    return kept


def _seam_holds(end: SpanEnd, prior: int | None) -> bool:
    """Did the part decide as the serial run would, given the frame delivered before it?"""
    if end.unresolved:
        return False
    return end.floor_ms is None or prior is None or prior <= end.floor_ms


def _joined_error(dones: dict[int, Done], kept: list[int]) -> str | None:
    """The serial run's one-line error: the stopping part's, else the header's defect, else
    "no decodable frames" when no part delivered a frame."""
    last = dones[kept[-1]]
    if last.error:
        return last.error
    if last.end is not None and last.end.header_problem:
        return span_error(last.end.header_problem)
    if sum(dones[i].frames for i in kept) == 0:
        return "no decodable frames"
    return None


def span_error(problem: str | None, header_problem: str | None = None) -> str | None:
    """The one line the serial run writes when decoding stops with ``problem``."""
    problems = [p for p in (problem, header_problem) if p]
    return error_line(DecodeError("; ".join(problems))) if problems else None


@dataclass(eq=False)
class Task:
    """A decode thread's unit of work: a whole input (``part`` None) or one part of it."""

    item: WorkItem
    part: Part | None = None


class WorkQueue:
    """The local decode threads' work: whole inputs, and the parts a split input queues.

    Parts go to the front, so an input's parts are decoded before the next input starts
    (few inputs in flight: a crash loses little, memory stays flat). A thread that finds
    the queue empty waits while a whole input taken by another thread is still undecided
    (it may yet be cut), then leaves.
    """

    def __init__(self, items: list[WorkItem]) -> None:
        self._queue: deque[Task] = deque(Task(item) for item in items)
        self._undecided: set[Task] = set()
        self._closed = False
        self._lock = threading.Condition()

    def take(self) -> Task | None:
        """The next input or part; None when there is none left (or the queue closed)."""
        with self._lock:
            while not self._queue and self._undecided and not self._closed:
                self._lock.wait()
            if not self._queue or self._closed:
                return None
            task = self._queue.popleft()
            if task.part is None:
                self._undecided.add(task)
            return task

    def decide(self, task: Task, parts: list[Part]) -> Part | None:
        """A whole input's parts are known: queue all but the first, which the caller
        decodes (None: decoded whole). Later calls for the same task change nothing."""
        with self._lock:
            if task not in self._undecided:
                return None
            self._undecided.discard(task)
            self._queue.extendleft(Task(task.item, p) for p in reversed(parts[1:]))
            self._lock.notify_all()
        return parts[0] if parts else None

    def close(self) -> None:
        """Wake and release every waiting thread (the consumer has stopped)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
