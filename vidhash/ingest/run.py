"""The runner: plan -> frame source (spread by a distributor) -> [model] -> sink, one Summary.

``extract`` is the runner without a model into a folder sink; ``build_index`` the runner
with the model into the index sink. A *distributor* runs the frame source over the work
items and yields its events: :class:`LocalDistributor` (decode threads feeding one
bounded queue, the default) or :class:`vidhash.ingest.ray.RayDistributor` (Ray Data
tasks, the model in an actor pool). Everything else is this module's, so both engines
keep the same resume, incremental and healing rules and write the same bytes.

Every core decodes: a long video is cut by time into parts that decode on their own
(:mod:`vidhash.ingest.split`), so one long file keeps every decode thread busy as many
files do. The runner joins an input's parts back into the serial run's rows, status and
error (frames arrive in any order, each part's Done carries its frame count) and commits
it once all its parts are in; a part whose seam did not hold is decoded again after the
main run (``Distributor.redo``). Inference runs in this thread, in full ``batch_size``
batches (the last one at the end).

Memory stays flat: at most ``queue_size`` events wait between the decode threads and the
model, at most ``batch_size`` crops wait for their codes, and an input's rows are
committed (one atomic part) as soon as its last keyframe has its code. Decoding (PyAV,
mostly outside the GIL) and inference (outside the GIL) overlap through the queue.
A crash loses at most the inputs in flight (a cut input's parts are queued first, so few
inputs are); a rerun redoes exactly those.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Protocol

from vidhash.ingest.feed import Feed
from vidhash.ingest.frames import Done, Frame, item_events
from vidhash.ingest.options import IngestOptions
from vidhash.ingest.plan import WorkItem, make_plan
from vidhash.ingest.sinks import Encoder, Sink, open_folder, open_index
from vidhash.ingest.split import MIN_SPAN, Part, Task, WorkQueue, cut_parts
from vidhash.video.discover import discover
from vidhash.video.spans import Timeline


class Distributor(Protocol):
    """Runs the frame source over work items and yields its events (an input's frames may
    arrive in any order, and after its Done: the Done carries the frame count). It may
    cut a long input into parts (:mod:`vidhash.ingest.split`); ``redo`` decodes one part
    again, with the frame before it known, when the runner's join asks for it."""

    def events(
        self, items: list[WorkItem], options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]: ...

    def redo(
        self, item: WorkItem, part: Part, options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]: ...


@dataclass
class Summary:
    """What a run did (``to_dict()`` is the ``--json`` output); the same for both commands.

    Status counts cover every input as it stands after the run; ``processed`` inputs were
    recorded anew (decoded, or skipped/unreadable), the others are ``unchanged``.
    """

    out: str
    model_id: str | None = None
    inputs: int = 0
    processed: int = 0
    unchanged: int = 0
    removed: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    skipped: int = 0
    duplicate: int = 0
    keyframes: int = 0  # made by this run
    seconds: float = 0.0
    keyframes_per_second: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every input is ok, skipped or a duplicate; 1 when some failed or are partial."""
        return 1 if (self.failed or self.partial) else 0

    def record(self, row: dict[str, Any], processed: bool) -> None:
        status = row["status"]
        setattr(self, status, getattr(self, status) + 1)
        if processed:
            self.processed += 1
        else:
            self.unchanged += 1
        if status in ("partial", "failed", "skipped"):
            problem = {"path": row["video_path"], "status": status, "error": row["error"] or ""}
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}

    def lines(self) -> list[str]:
        """The text report: one summary line, the check's line, then one line per problem."""
        out = [
            f"{self.out}: {self.inputs} inputs: {self.ok} ok, {self.partial} partial, "
            f"{self.failed} failed, {self.skipped} skipped, {self.duplicate} duplicate "
            f"({self.processed} processed, {self.unchanged} unchanged, {self.removed} removed); "
            f"{self.keyframes} keyframes in {self.seconds:.1f} s "
            f"({self.keyframes_per_second:.1f} keyframes/s)"
        ]
        check = self.check
        if check.get("full") or check.get("damaged"):
            out.append(
                f"check: {check['parts']} keyframes parts, {check['images']} images; "
                f"{len(check['damaged'])} damaged, {check['repaired']} repaired by processing "
                "them again"
            )
            out += [f"  damaged: {d['path']}: {d['reason']}" for d in check["damaged"]]
        return out + [f"  {p['status']}: {p['path']}: {p['error']}" for p in self.problems]


class LocalDistributor:
    """Decode threads (``options.workers``) feeding one bounded queue: the default engine.

    With more than one thread, a video long enough for two parts of ``min_span`` samples
    is cut when its timeline is known (``split``), so one long file keeps every thread
    decoding; the parts go to the front of the work queue.
    """

    _END = object()

    def __init__(self, split: bool = True, min_span: int = MIN_SPAN) -> None:
        self.split = split
        self.min_span = min_span

    def events(
        self, items: list[WorkItem], options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]:
        events: queue.Queue = queue.Queue(maxsize=options.queue_size)
        workers = max(1, options.workers or 1)
        cutting = self.split and workers > 1
        work = WorkQueue(items)
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set() and (task := work.take()) is not None:
                split = None
                if cutting and task.part is None:
                    split = partial(_cut, work, task, workers, self.min_span)
                try:
                    for event in item_events(task.item, options, pixels, task.part, split):
                        if stop.is_set():
                            return
                        events.put(event)
                finally:
                    work.decide(task, [])  # not cut after all (an image, a failure)
            events.put(self._END)

        count = workers if cutting else min(workers, len(items))
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, count))]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                event = events.get()
                if event is self._END:
                    running -= 1
                    continue
                yield event
        finally:
            stop.set()
            work.close()
            # Unblock producers waiting on a full queue so the threads can exit.
            while any(t.is_alive() for t in threads):
                with contextlib.suppress(queue.Empty):
                    events.get(timeout=0.05)

    def redo(
        self, item: WorkItem, part: Part, options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]:
        """Decode a part again here (rare: a seam that did not hold)."""
        return item_events(item, options, pixels, part)


def _cut(work: WorkQueue, task: Task, workers: int, min_span: int, line: Timeline) -> Part | None:
    """Cut a whole input whose timeline is now known; the part this thread decodes."""
    return work.decide(task, cut_parts(line, workers, min_span))


def run(
    found: Any,
    sink: Sink,
    options: IngestOptions,
    *,
    encoder: Encoder | None = None,
    distributor: Distributor | None = None,
    verify: bool = False,
    progress: bool = True,
) -> Summary:
    """Plan ``found`` (discovered inputs) against ``sink`` and carry the plan out."""
    from tqdm import tqdm

    started = time.perf_counter()
    plan = make_plan(found, sink, options, full_check=verify)
    summary = Summary(out=str(sink.root), model_id=getattr(encoder, "model_id", None))
    summary.inputs = plan.inputs
    damaged = plan.check.damaged
    summary.check = {
        "full": verify,
        "parts": plan.check.parts,
        "images": plan.check.images,
        "damaged": [{"path": p, "reason": r} for p, r in sorted(damaged.items())],
        "repaired": len(plan.repaired),
    }
    summary.removed = len(sink.drop_videos(plan.removed))
    for row in plan.unchanged:
        summary.record(row, processed=False)
    for row in plan.refresh:
        sink.write_row(row)  # a touched file: keep its keyframes, remember its new stat
        summary.record(row, processed=False)
    for row in plan.rows:
        summary.record({**row, "status": sink.commit(row)}, processed=True)

    bar = tqdm(total=len(plan.todo), unit="input", desc="ingest", disable=not progress)

    def committed(keyframes: int) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{keyframes} keyframes")

    try:
        feed = Feed(sink, options, summary, encoder, committed)
        feed.drain(distributor or LocalDistributor(), plan.todo)
    finally:
        bar.close()
    summary.problems.sort(key=lambda p: p["path"])
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.keyframes_per_second = round(summary.keyframes / max(summary.seconds, 1e-9), 2)
    return summary


def extract(
    inputs: str | os.PathLike | list,
    out: str | os.PathLike,
    options: IngestOptions | None = None,
    *,
    distributor: Distributor | None = None,
    verify: bool = False,
    progress: bool = True,
) -> Summary:
    """Keyframe JPEGs and their tables for every input, into the folder ``out``."""
    options = (options or IngestOptions()).validate()
    found = discover(inputs)
    with open_folder(out) as sink:
        return run(found, sink, options, distributor=distributor, verify=verify, progress=progress)


def build_index(
    inputs: str | os.PathLike | list,
    out: str | os.PathLike,
    model: str | Encoder = "default",
    options: IngestOptions | None = None,
    *,
    reindex: bool = False,
    device: str = "cpu",
    distributor: Distributor | None = None,
    verify: bool = False,
    progress: bool = True,
) -> Summary:
    """Index every input into ``out`` with ``model`` (a shipped name, a checkpoint path or
    a loaded network). A model other than the index's is refused unless ``reindex``."""
    from vidhash.models import load_model, model_card

    options = (options or IngestOptions()).validate()
    found = discover(inputs)
    if not isinstance(model, str):
        encoder = model
    elif getattr(distributor, "model", None) is not None:
        encoder = model_card(model)  # the distributor's workers load and run it
    else:  # decode threads share the cores: idle inference threads sleep, not spin
        encoder = load_model(model, device=device, spin=False)
    source = model if isinstance(model, str) else None
    with open_index(out, encoder, source, reindex=reindex) as sink:
        return run(
            found,
            sink,
            options,
            encoder=encoder,
            distributor=distributor,
            verify=verify,
            progress=progress,
        )
