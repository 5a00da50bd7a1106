"""The runner's event loop: a distributor's events -> images, codes, joined inputs, commits.

Why its own module: :func:`vidhash.ingest.run.run` plans and reports; this is what it does
with the events. Frame by frame: the JPEG is written as it comes (so memory stays flat),
the crop waits in the batch for the model (flushed at ``batch_size``, and at the end), the
row waits with its input (:class:`vidhash.ingest.split.Pending`). When an input's parts
are all in, their join gives the serial run's rows, status and error, and the input is
committed (one atomic part, then its videos row); images written for rows the join drops
are deleted unless another committed input shares the content. A join that needs a part
decoded again queues a redo, run through the distributor after its main events.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from vidhash.ingest.frames import Done, Frame
from vidhash.ingest.options import IngestOptions
from vidhash.ingest.plan import WorkItem
from vidhash.ingest.sinks import Encoder, Sink
from vidhash.ingest.split import Part, Pending

if TYPE_CHECKING:
    from vidhash.ingest.run import Distributor, Summary


class Feed:
    """The runner's event loop: images written as frames come, codes in full batches, each
    input joined from its parts (:class:`vidhash.ingest.split.Pending`) and committed."""

    def __init__(
        self,
        sink: Sink,
        options: IngestOptions,
        summary: Summary,
        encoder: Encoder | None,
        progress: Callable[[int], None],
    ) -> None:
        self.sink, self.options, self.summary = sink, options, summary
        self.encoder, self.progress = encoder, progress
        self.sampling = options.fingerprint()
        self.pending: dict[str, Pending] = {}
        self.batch: list[tuple[Pending, dict[str, Any], np.ndarray]] = []
        self.redos: list[tuple[WorkItem, Part]] = []

    def drain(self, distributor: Distributor, todo: list[WorkItem]) -> None:
        """Every event of the distributor, then of the redos the joins asked for."""
        self.pending = {item.path: Pending(item) for item in todo}
        pixels = self.encoder is not None
        events = distributor.events(todo, self.options, pixels=pixels)
        while True:
            for event in events:
                self.event(event)
            self.flush()
            if not self.redos:
                return
            # After the main run (the engine's workers are free again): decode the rest of
            # an input whose seam did not hold, with the frame before it known.
            redos, self.redos = self.redos, []
            events = chain.from_iterable(
                distributor.redo(item, part, self.options, pixels) for item, part in redos
            )

    def event(self, event: Frame | Done) -> None:
        state = self.pending[event.path]
        if isinstance(event, Done):
            state.dones[event.part] = event
            self.finish(state)
            return
        row = event.row
        if event.jpeg is not None:
            row["image_path"] = self.sink.write_image(row["keyframe_id"], event.jpeg)
        state.add(event, row)
        if event.code is not None or self.encoder is None:
            row["code"] = event.code
            if event.descriptor is not None:
                row["descriptor"] = event.descriptor
            return
        state.waiting += 1
        self.batch.append((state, row, event.image))
        if len(self.batch) >= self.options.batch_size:
            self.flush()

    def flush(self) -> None:
        """Codes for the batched crops (full batches, and what is left at the end)."""
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        codes, descriptors = self.encoder.embed(np.stack([image for _, _, image in batch]))
        for i, (state, row, _) in enumerate(batch):
            row["code"] = codes[i].tobytes()
            if descriptors is not None:
                row["descriptor"] = descriptors[i].astype("<f2").tobytes()
            state.waiting -= 1
        for state in {id(state): state for state, _, _ in batch}.values():
            self.finish(state)

    def finish(self, state: Pending) -> None:
        """Commit an input once all its parts are in (or queue the redo its join asks)."""
        if not state.ready():
            return  # frames or codes still on their way (Ray may deliver a Done first)
        joined = state.join()
        if isinstance(joined, Part):
            state.redoing = True
            self.redos.append((state.item, joined))
            return
        item, rows = state.item, joined.rows
        if joined.dropped and not self._shared(item):
            for rel in joined.dropped:
                (self.sink.root / rel).unlink(missing_ok=True)
        status = "ok" if joined.error is None else ("partial" if rows else "failed")
        row = {
            **joined.facts,
            "video_path": item.path,
            "content_hash": item.content_hash,
            "size_bytes": item.size_bytes,
            "mtime_ns": item.mtime_ns,
            "kind": item.kind,
            "status": status,
            "error": joined.error,
            "sampling": self.sampling,
        }
        status = self.sink.commit(row, rows)
        self.summary.record({**row, "status": status}, processed=True)
        self.summary.keyframes += len(rows) if status != "duplicate" else 0
        del self.pending[item.path]
        self.progress(self.summary.keyframes)

    def _shared(self, item: WorkItem) -> bool:
        """Does another committed input have this content (and so its image folder)?"""
        rows = self.sink.committed().values()
        return any(
            r["content_hash"] == item.content_hash and r["video_path"] != item.path for r in rows
        )
