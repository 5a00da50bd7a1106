"""The local indexing engine: decode workers -> bounded queue -> batched model -> store.

Decoding (PyAV, mostly outside the GIL) and inference (torch, outside the GIL) overlap
through a bounded queue, so when the stages do not share cores (the model on a GPU) the
wall time approaches the slower stage alone; on a CPU-only machine both compete for the
same cores (measured in docs/RESULTS.md). Memory stays flat: at most ``queue_size``
preprocessed frames wait between the stages, and a video's rows are written (atomically,
one part file per video) as soon as its last keyframe is coded. A crash therefore loses at
most the videos in flight; a rerun redoes exactly those.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidhash.errors import DecodeError
from vidhash.extract import ExtractOptions
from vidhash.fsutil import atomic_write_bytes, content_hash
from vidhash.video.discover import discover
from vidhash.video.sampling import Keyframe, iter_keyframes, keyframes_from_stream
from vidhash.video.stream import open_video


class Encoder(Protocol):
    """What the pipeline needs of a model: packed codes for a batch of 224x224 RGB frames."""

    model_id: str
    code_bits: int

    def encode(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class IndexOptions(ExtractOptions):
    """`vidhash extract`'s sampling options plus how the model side is fed."""

    batch_size: int = 32
    workers: int = 2
    queue_size: int = 128
    save_images: bool = True

    def sampling_fingerprint(self) -> str:
        """What decides an input's keyframes: a change re-indexes it (as `extract` does)."""
        return ExtractOptions(
            **{f.name: getattr(self, f.name) for f in fields(ExtractOptions)}
        ).fingerprint()


@dataclass
class IndexSummary:
    """What one `vidhash index` run did; printed with --json."""

    index: str
    model_id: str
    inputs: int = 0
    indexed: int = 0
    unchanged: int = 0
    partial: int = 0
    failed: int = 0
    skipped: int = 0
    duplicate: int = 0
    removed: int = 0
    keyframes: int = 0
    seconds: float = 0.0
    keyframes_per_second: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkItem:
    """One input to (re)index: a video file or a still image."""

    path: Path
    kind: str  # "video" | "image"
    content_hash: str
    size_bytes: int
    mtime: float


@dataclass
class _Pending:
    """A video in flight: its rows so far and how many frames still await their codes."""

    item: WorkItem
    rows: list[dict[str, Any]] = field(default_factory=list)
    waiting: int = 0
    finished_decoding: bool = False
    status: str = "ok"
    error: str | None = None
    duration: float | None = None


_END = object()


def plan_work(
    inputs: Iterable[Path], store_rows: dict[str, dict[str, Any]], kind: str, sampling: str
) -> tuple[list[WorkItem], int]:
    """Which inputs need (re)indexing: new, changed, or sampled with other options.

    Size and mtime spare re-hashing every file on a rerun; the content hash decides when
    they differ (a touched but identical file stays indexed).
    """
    todo: list[WorkItem] = []
    unchanged = 0
    for path in inputs:
        stat = path.stat()
        previous = store_rows.get(str(path))
        if previous is not None and previous.get("sampling") == sampling:
            if (
                int(previous["size_bytes"]) == stat.st_size
                and float(previous["mtime"]) == stat.st_mtime
            ):
                unchanged += 1
                continue
            digest = content_hash(path)
            if previous["content_hash"] == digest:
                unchanged += 1
                continue
        else:
            digest = content_hash(path)
        todo.append(WorkItem(path, kind, digest, stat.st_size, stat.st_mtime))
    return todo, unchanged


def iter_item_frames(
    item: WorkItem, options: IndexOptions, facts: dict[str, Any] | None = None
) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(keyframe row, 224x224 RGB image) for one input; raises DecodeError after a partial.

    A still image is one keyframe at t = 0. A video is opened once: its header duration
    goes into ``facts["duration"]`` (None when the header does not say), so the videos
    table needs no second open or probe of the file.
    """
    if item.kind == "image":
        keyframes = iter_keyframes(item.path, video_hash=item.content_hash, size=options.size)
        yield from (_row_and_image(kf) for kf in keyframes)
        return
    with open_video(item.path, backend=options.backend) as stream:
        if facts is not None:
            facts["duration"] = stream.info.duration
        for kf in keyframes_from_stream(
            stream,
            video_hash=item.content_hash,
            every=options.every,
            count=options.count,
            mode=options.mode,
            size=options.size,
        ):
            yield _row_and_image(kf)


def _row_and_image(kf: Keyframe) -> tuple[dict[str, Any], np.ndarray]:
    row = {
        "keyframe_id": kf.keyframe_id,
        "pts_time": kf.pts_time,
        "frame_index": kf.frame_index,
        "width": kf.width,
        "height": kf.height,
        "rotation": kf.rotation,
    }
    return row, kf.image


def decode_error_message(exc: BaseException) -> str:
    """One line for the videos table: DecodeError's own words, else the exception type too."""
    if isinstance(exc, DecodeError):
        return str(exc) or "decode error"
    return f"{type(exc).__name__}: {exc}"


def _produce(
    item: WorkItem,
    options: IndexOptions,
    out: queue.Queue,
    stop: threading.Event,
    write_image: Callable[[str, np.ndarray], str] | None,
) -> None:
    """Decode one input and push (item, row, image) into the queue, then an end marker.

    JPEG writing happens here, on the decode side, so it never slows the model's loop.
    """
    error: str | None = None
    facts: dict[str, Any] = {}
    try:
        for row, image in iter_item_frames(item, options, facts):
            if stop.is_set():
                return
            if write_image is not None:
                row["image_path"] = write_image(row["keyframe_id"], image)
            out.put((item, row, image))
    except Exception as exc:  # a decoder bug on one file must not stop the batch
        error = decode_error_message(exc)
    out.put((item, _END, (error, facts.get("duration"))))


def _decode_all(
    items: list[WorkItem],
    options: IndexOptions,
    stop: threading.Event,
    write_image: Callable[[str, np.ndarray], str] | None,
) -> Iterator[tuple[WorkItem, Any, Any]]:
    """Run decode workers over ``items``, yielding their queue's contents in arrival order."""
    frames: queue.Queue = queue.Queue(maxsize=options.queue_size)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    n_workers = max(1, min(options.workers, len(items)))

    def worker() -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                break
            _produce(item, options, frames, stop, write_image)
        frames.put((None, _END, None))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_workers)]
    for t in threads:
        t.start()
    running = n_workers
    try:
        while running:
            item, payload, extra = frames.get()
            if item is None:
                running -= 1
                continue
            yield item, payload, extra
    finally:
        stop.set()
        # Unblock producers waiting on a full queue so the threads can exit.
        while any(t.is_alive() for t in threads):
            with contextlib.suppress(queue.Empty):
                frames.get(timeout=0.05)


def run_local(
    items: list[WorkItem],
    encoder: Encoder,
    write_video: Callable[[WorkItem, _Pending], None],
    write_image: Callable[[str, np.ndarray], str] | None,
    options: IndexOptions,
    on_progress: Callable[[int, _Pending | None], None] | None = None,
) -> None:
    """Decode, batch, encode and hand each finished video to ``write_video``.

    ``write_image`` (keyframe_id, image) -> stored relative path, or None for no images.
    """
    stop = threading.Event()
    pending: dict[str, _Pending] = {}
    batch_rows: list[tuple[_Pending, dict[str, Any]]] = []
    batch_images: list[np.ndarray] = []

    def flush() -> None:
        if not batch_images:
            return
        codes = encoder.encode(np.stack(batch_images))
        for (state, row), code in zip(batch_rows, codes, strict=True):
            row["code"] = code.tobytes()
            state.waiting -= 1
        touched = {id(state): state for state, _ in batch_rows}
        n = len(batch_images)
        batch_rows.clear()
        batch_images.clear()
        if on_progress:
            on_progress(n, None)
        for state in touched.values():
            maybe_finish(state)

    def maybe_finish(state: _Pending) -> None:
        if state.finished_decoding and state.waiting == 0:
            write_video(state.item, state)
            pending.pop(str(state.item.path), None)
            if on_progress:
                on_progress(0, state)

    for item, payload, extra in _decode_all(items, options, stop, write_image):
        key = str(item.path)
        state = pending.setdefault(key, _Pending(item))
        if payload is _END:
            error, duration = extra
            state.finished_decoding = True
            state.duration = duration
            if error is not None:
                state.error = error
                state.status = "partial" if state.rows else "failed"
            maybe_finish(state)
            continue
        row = payload
        state.rows.append(row)
        state.waiting += 1
        batch_rows.append((state, row))
        batch_images.append(extra)
        if len(batch_images) >= options.batch_size:
            flush()
    flush()


def default_workers() -> int:
    """Decode workers: leave the model its cores, but keep at least two videos in flight."""
    return max(2, (os.cpu_count() or 2) // 2)


class IndexRun:
    """One run's bookkeeping, shared by the local and the Ray engines.

    It opens the store (checking the model), drops deleted inputs, decides what needs
    (re)indexing, and writes each finished input as one atomic part while counting
    outcomes, so both engines obey the same resume and incremental rules.
    """

    def __init__(
        self,
        inputs: str | os.PathLike,
        index_dir: str | os.PathLike,
        meta: dict[str, Any],
        options: IndexOptions,
        *,
        reindex: bool = False,
    ) -> None:
        from vidhash.index.store import IndexStore

        self.started = time.perf_counter()
        self.meta = meta
        self.sampling = options.sampling_fingerprint()
        found = discover(inputs)
        self.store = IndexStore.open(index_dir, model_meta=meta, reindex=reindex, create=True)
        self.summary = IndexSummary(index=str(index_dir), model_id=meta["model_id"])

        previous = store_video_rows(self.store)
        current = {str(p) for p in (*found.videos, *found.images)}
        deleted = [p for p in previous if p not in current and not Path(p).exists()]
        if deleted:
            self.store.drop_videos(deleted)
            self.summary.removed = len(deleted)

        video_items, unchanged_v = plan_work(found.videos, previous, "video", self.sampling)
        image_items, unchanged_i = plan_work(found.images, previous, "image", self.sampling)
        self.items: list[WorkItem] = image_items + video_items
        self.summary.inputs = len(found.videos) + len(found.images) + len(found.skipped)
        self.summary.unchanged = unchanged_v + unchanged_i
        for path, reason in found.skipped:
            self.summary.skipped += 1
            self.summary.failures.append({"path": str(path), "status": "skipped", "error": reason})

    def write_image(self, kf_id: str, image: np.ndarray, quality: int) -> str:
        return self.store.write_image(kf_id, image, quality=quality)

    def write_jpeg(self, kf_id: str, jpeg: bytes) -> str:
        """Store already-encoded JPEG bytes (the Ray workers encode them); relative path."""
        path = self.store.image_path_for(kf_id)
        atomic_write_bytes(path, jpeg)
        return path.relative_to(self.store.root).as_posix()

    def write_video(self, item: WorkItem, state: _Pending) -> None:
        """Write one finished input (rows + its videos row) atomically and count it."""
        rows = keyframe_rows(item, state, self.meta)
        status = self.store.write_video(video_row(item, state, self.sampling), rows) or state.status
        summary = self.summary
        if status == "duplicate":
            summary.duplicate += 1
        else:
            summary.keyframes += len(state.rows)
            if status == "failed":
                summary.failed += 1
            elif status == "partial":
                summary.partial += 1
            else:
                summary.indexed += 1
        if status in ("failed", "partial"):
            summary.failures.append(
                {"path": str(item.path), "status": status, "error": state.error or ""}
            )

    def finish(self) -> IndexSummary:
        summary = self.summary
        summary.seconds = round(time.perf_counter() - self.started, 3)
        summary.keyframes_per_second = round(summary.keyframes / max(summary.seconds, 1e-9), 2)
        return summary


def build_index(
    inputs: str | os.PathLike,
    index_dir: str | os.PathLike,
    model: str | Encoder,
    *,
    options: IndexOptions | None = None,
    reindex: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> IndexSummary:
    """Index INPUT (file, folder or list file) into ``index_dir`` with the local engine."""
    options = (options or IndexOptions()).validate()
    from tqdm import tqdm

    from vidhash.models import load_model

    encoder = load_model(model, device=device) if isinstance(model, str) else model
    source = model if isinstance(model, str) else None
    run = IndexRun(inputs, index_dir, model_meta(encoder, source), options, reindex=reindex)
    bar = tqdm(total=None, unit="kf", desc="indexing", disable=not progress, dynamic_ncols=True)

    def on_progress(n_frames: int, finished: _Pending | None) -> None:
        bar.update(n_frames)
        if finished is not None:
            done = run.summary.indexed + run.summary.partial + run.summary.failed
            bar.set_postfix_str(f"{done}/{len(run.items)} inputs")

    def write_image(kf_id: str, image: np.ndarray) -> str:
        return run.write_image(kf_id, image, options.jpeg_quality)

    try:
        run_local(
            run.items,
            encoder,
            run.write_video,
            write_image if options.save_images else None,
            options,
            on_progress,
        )
    finally:
        bar.close()
    return run.finish()


def model_meta(encoder: Encoder, source: str | None = None) -> dict[str, Any]:
    """The model identity the index records and checks on every later run.

    ``model_name`` is what `vidhash search` reloads the model by: a shipped name as is, a
    checkpoint as its absolute path.
    """
    import json

    from vidhash.models import SHIPPED_NAMES

    config = getattr(encoder, "config", {}) or {}
    if source is not None and source not in SHIPPED_NAMES:
        name = str(Path(source).resolve())
    else:
        name = source or getattr(encoder, "model_name", None) or encoder.model_id[:12]
    return {
        "model_id": encoder.model_id,
        "model_name": name,
        "model_config": json.dumps(config, sort_keys=True, default=str),
        "code_bits": int(encoder.code_bits),
    }


def store_video_rows(store: Any) -> dict[str, dict[str, Any]]:
    """Previously indexed inputs by path (size, mtime, hash), for incremental reruns."""
    table = store.read_table("videos")
    if table is None or len(table) == 0:
        return {}
    return {row["video_path"]: row for row in table.to_dict("records")}


def video_row(item: WorkItem, state: _Pending, sampling: str) -> dict[str, Any]:
    return {
        "video_id": item.content_hash,
        "video_path": str(item.path),
        "content_hash": item.content_hash,
        "size_bytes": item.size_bytes,
        "mtime": item.mtime,
        "duration": state.duration,
        "n_keyframes": len(state.rows),
        "kind": item.kind,
        "status": state.status,
        "error": state.error,
        "sampling": sampling,
    }


def keyframe_rows(item: WorkItem, state: _Pending, meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            "video_id": item.content_hash,
            "video_path": str(item.path),
            "code_bits": int(meta["code_bits"]),
            "model_id": meta["model_id"],
            "image_path": row.get("image_path"),
        }
        for row in state.rows
    ]
