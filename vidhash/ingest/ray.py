"""The Ray distributor: the runner's frame source spread over a Ray cluster.

Only *where* the work runs changes: the driver plans with the same planner, Ray Data runs
:func:`vidhash.ingest.frames.item_events` as CPU tasks (one block per input or part, JPEGs
encoded there by the one encoder, so only their bytes travel) and the model in an actor
pool (GPU actors when asked), and the driver's runner commits each finished input into
the same sink. So the index (ids, codes, rows, JPEG bytes) is the local engine's.

Long inputs are cut by time first (:mod:`vidhash.ingest.split`): a first pass of tasks
opens each video of at least ``split_bytes`` and cuts it for the cluster's CPUs
(:func:`~vidhash.ingest.split.plan_parts`: the keyframe map travels with the parts, so no
part scans the file again); each part is then a task of its own, and the runner joins
them. A redo (a seam that did not hold: rare) runs as one more small job after the run.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vidhash.ingest.frames import Done, Frame, item_events
from vidhash.ingest.options import IngestOptions
from vidhash.ingest.plan import WorkItem
from vidhash.ingest.split import MIN_SPAN, Part, plan_parts


def _work(item: WorkItem, part: Part | None = None) -> dict[str, bytes]:
    return {"work": pickle.dumps((item, part))}


def _parts_of(record: dict[str, Any], options: IngestOptions, workers: int, min_span: int):
    """First pass: one input -> its parts (or itself whole), as work records."""
    item = WorkItem(**record)
    parts = plan_parts(item, options, workers, min_span)
    return [_work(item, part) for part in parts] or [_work(item)]


def _rows(record: dict[str, Any], options: IngestOptions, pixels: bool) -> Iterator[dict]:
    """One input's (or part's) events as Ray rows: the pixels as a tensor column (for the
    actors), the rest of the event pickled (Ray pickles what it moves anyway)."""
    blank = np.zeros((options.size, options.size, 3) if pixels else (1, 1, 3), np.uint8)
    item, part = pickle.loads(record["work"])
    for event in item_events(item, options, pixels, part):
        image = getattr(event, "image", None)
        if isinstance(event, Frame):
            event.image = None
        yield {
            "end": isinstance(event, Done),
            "image": blank if image is None else image,
            "event": pickle.dumps(event),
        }


class _EncodeActor:
    """Holds the model once per actor; turns image batches into codes and descriptors."""

    def __init__(self, model: str, device: str) -> None:
        from vidhash.models import load_model

        self.model = load_model(model, device=device, spin=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = ~batch["end"].astype(bool)
        codes = np.zeros((len(frames), (self.model.code_bits + 7) // 8), np.uint8)
        descriptors = np.zeros((len(frames), self.model.descriptor_dims), "<f2")
        if frames.any():
            embedded = self.model.embed(np.stack(batch["image"][frames]))
            codes[frames] = embedded.codes
            if embedded.descriptors is not None:
                descriptors[frames] = embedded.descriptors
        out = {k: v for k, v in batch.items() if k != "image"}
        out["code"] = codes
        out["descriptor"] = descriptors
        return out


@dataclass
class RayDistributor:
    """Decode tasks and (with ``model``) an encoding actor pool on a Ray cluster.

    ``address``: a cluster to join (``auto``, ``ray://head:10001``), or None for a local
    instance. ``model``: the shipped name or checkpoint path the actors load (None:
    extract, no model).
    """

    model: str | None = None
    address: str | None = None
    num_gpus_per_worker: float = 0.0
    decode_cpus: float = 1.0
    num_actors: int | None = None
    device: str = "cpu"
    progress: bool = True
    split: bool = True  # cut long videos into parts (one task each)
    split_bytes: int = 1 << 20  # videos this large are opened in a first pass to be cut
    min_span: int = MIN_SPAN

    def events(
        self, items: list[WorkItem], options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]:
        if not items:
            return
        if pixels and self.model is None:
            raise ValueError("RayDistributor(model=...) names the model its actors load")
        self._init()
        yield from self._run(self._cut(items, options), options, pixels)

    def redo(
        self, item: WorkItem, part: Part, options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]:
        """Decode one part again, as a job of its own (after the run: rare)."""
        self._init()
        yield from self._run([_work(item, part)], options, pixels)

    def _init(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = self.progress

    def _cut(self, items: list[WorkItem], options: IngestOptions) -> list[dict[str, bytes]]:
        """Work records: long videos cut into parts by a first pass of tasks, the rest whole."""
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 1))
        long = [i for i in items if i.kind == "video" and i.size_bytes >= self.split_bytes]
        if not self.split or cpus < 2 or not long:
            return [_work(item) for item in items]
        cut = ray.data.from_items([asdict(i) for i in long], override_num_blocks=len(long))
        kwargs = {"options": options, "workers": cpus, "min_span": self.min_span}
        records = cut.flat_map(_parts_of, fn_kwargs=kwargs, num_cpus=self.decode_cpus).take_all()
        cut_paths = {item.path for item in long}
        return [_work(item) for item in items if item.path not in cut_paths] + records

    def _run(
        self, work: list[dict[str, bytes]], options: IngestOptions, pixels: bool
    ) -> Iterator[Frame | Done]:
        import ray

        encode = self.model is not None and pixels
        dataset = ray.data.from_items(work, override_num_blocks=len(work)).flat_map(
            _rows, fn_kwargs={"options": options, "pixels": encode}, num_cpus=self.decode_cpus
        )
        if encode:
            pool = self.num_actors or max(1, int(ray.available_resources().get("GPU", 0)) or 1)
            device = "cuda" if self.num_gpus_per_worker > 0 else self.device
            dataset = dataset.map_batches(
                _EncodeActor,
                fn_constructor_kwargs={"model": self.model, "device": device},
                batch_size=options.batch_size,
                batch_format="numpy",
                num_gpus=self.num_gpus_per_worker,
                compute=ray.data.ActorPoolStrategy(size=pool),
            )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i, data in enumerate(batch["event"]):
                event = pickle.loads(data)
                if encode and isinstance(event, Frame):
                    event.code = np.asarray(batch["code"][i], np.uint8).tobytes()
                    if batch["descriptor"].shape[1]:
                        event.descriptor = np.asarray(batch["descriptor"][i], "<f2").tobytes()
                yield event
