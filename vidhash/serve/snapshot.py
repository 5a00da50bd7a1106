"""The index as the web service sees it: one opened ``Index`` plus what only the page needs.

Contracts:

* Every search goes through the opened :class:`vidhash.index.search.index.Index`
  (``search`` for an uploaded image's code and descriptor, ``search_ids`` for a keyframe;
  ``concept=`` and same-video exclusion are its own filters), so the service ranks
  exactly as ``vidhash search`` and the Python API do, two-stage where the index stores
  descriptors. Keyframe lookups by id (``record``, ``code_of``, ``concepts_of``) are the
  ``Index``'s too; nothing here keeps a second id table or a second searcher.
* A :class:`Snapshot` is built once per (re)open and never changes afterwards, so a
  request that took one keeps a consistent view even if the index is swapped meanwhile.
  What the page needs and ``Index`` does not offer (each video's keyframes in time order,
  the videos by path, the concepts with their group and keyframe count) is computed here
  at open time, and each concept's rows are loaded into the ``Index``'s cache then (one
  search per concept), never per request.
* :class:`IndexHolder` owns the current snapshot. A watcher thread looks at the index's
  committed files (count and modification times of ``meta/``, ``videos/``, ``keyframes/``
  and ``annotations/`` Parquet files, never ``.tmp-*``, and of the search file's manifest,
  which the writer replaces just after each commit) at most once per ``poll_seconds``
  and, when they changed and then held still for one poll (or have kept changing for
  ``max_stale_seconds``, as during a long ``vidhash index`` run), opens a new ``Index`` in
  that thread and swaps the reference (one attribute assignment: atomic). A failed reopen
  keeps the old snapshot serving and is reported by :attr:`IndexHolder.stale`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidhash.index.search.file import MANIFEST
from vidhash.index.search.index import NO_DESCRIPTORS, Index
from vidhash.index.store.paths import SEARCH_DIR
from vidhash.index.store.store import IndexTables

log = logging.getLogger("vidhash.serve")

_WATCHED = ("meta", "videos", "keyframes", "annotations")
_MANIFEST = Path(SEARCH_DIR) / MANIFEST


@dataclass(frozen=True)
class Concept:
    name: str
    group: str | None
    keyframes: int  # live keyframes labelled with it


class Snapshot:
    """One opened index and the page's listings over it. Read-only after init."""

    def __init__(self, index: Index, groups: dict[str, str], generation: int) -> None:
        self.index = index
        self.generation = generation
        self.opened_at = time.time()
        # Why results are codes-only, for every answer (None: two-stage when asked).
        self.note: str | None = None if index.descriptor_dims else NO_DESCRIPTORS
        frame = index.keyframes  # only for the listings: videos and their strips
        self.ids = frame["keyframe_id"].to_numpy(dtype=object)
        self.video_ids = frame["video_id"].to_numpy(dtype=object)
        self.video_paths = frame["video_path"].to_numpy(dtype=object)
        self.pts = frame["pts_time"].to_numpy(dtype=np.float64)
        self.has_image = (frame["image_path"].fillna("") != "").to_numpy()
        self.videos: dict[str, np.ndarray] = {}  # video id -> its rows in time order
        for video_id, rows in frame.groupby("video_id", sort=False).indices.items():
            rows = np.asarray(rows, dtype=np.int64)
            self.videos[video_id] = rows[np.argsort(self.pts[rows], kind="stable")]
        self.video_order = sorted(self.videos, key=lambda v: self.video_paths[self.videos[v][0]])
        self.concepts = self._concepts(groups)

    def _concepts(self, groups: dict[str, str]) -> dict[str, Concept]:
        """Each concept with its live keyframe count; warms the ``Index``'s concept rows."""
        counts: dict[str, int] = {}
        for kid in self.ids.tolist():
            for name in self.index.concepts_of(kid):
                counts[name] = counts.get(name, 0) + 1
        probe = np.zeros(self.index.nbytes, np.uint8)
        out = {}
        for name in sorted(counts):
            try:  # the rows, cached by the Index; a failure must not stop the service
                self.index.search(probe, k=1, concept=name)
            except Exception as exc:
                log.warning("concept %r: searches filtered by it will fail: %s", name, exc)
            out[name] = Concept(name, groups.get(name), counts[name])
        return out

    def __len__(self) -> int:
        return len(self.ids)


def _signature(root: Path) -> tuple:
    """Cheap fingerprint of the committed files: per folder, count and mtimes."""
    out = []
    for name in _WATCHED:
        count, newest, total = 0, 0, 0
        try:
            with os.scandir(root / name) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
                        continue
                    try:
                        mtime = entry.stat().st_mtime_ns
                    except FileNotFoundError:
                        continue
                    count += 1
                    newest = max(newest, mtime)
                    total += mtime
        except (FileNotFoundError, NotADirectoryError):
            pass
        out.append((count, newest, total))
    try:  # an open during a commit reads the search file of the commit before: see the next
        out.append((1, (root / _MANIFEST).stat().st_mtime_ns, 0))
    except (FileNotFoundError, NotADirectoryError):
        out.append((0, 0, 0))
    return tuple(out)


def _groups(root: Path) -> dict[str, str]:
    """concept -> group, from the annotations table (``Index`` keeps only the names)."""
    table = IndexTables.open(root).read_table("annotations")
    return dict(zip(table["concept"], table["group"], strict=True)) if len(table) else {}


def open_snapshot(root: Path, generation: int = 0) -> Snapshot:
    """Open the index at ``root``; raises ``IndexMissingError`` when there is none."""
    index = Index.open(root)
    return Snapshot(index, _groups(root), generation)


class IndexHolder:
    """The current :class:`Snapshot`, swapped for a fresh one when the index changes."""

    def __init__(
        self, root: str | os.PathLike, poll_seconds: float = 1.0, max_stale_seconds: float = 30.0
    ) -> None:
        self.root = Path(root)
        self.poll_seconds = poll_seconds
        self.max_stale_seconds = max_stale_seconds
        self._signature = _signature(self.root)
        self.snapshot = open_snapshot(self.root)  # raises before any server starts
        self.stale: str | None = None  # why the last reopen failed, while it keeps failing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching the index (a daemon thread; :meth:`stop` ends it)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="vidhash-reopen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _watch(self) -> None:
        pending = None  # a changed signature waiting to hold still for one poll
        changed_since = 0.0
        while not self._stop.wait(self.poll_seconds):
            current = _signature(self.root)
            if current == self._signature:
                pending = None
                continue
            now = time.monotonic()
            if pending is None:
                changed_since = now
            if current != pending and now - changed_since < self.max_stale_seconds:
                pending = current  # a writer may still be busy: look again next poll
                continue
            self.reload(current)
            pending = None

    def reload(self, signature: tuple | None = None) -> bool:
        """Open the index again now and swap it in; on failure keep serving the old one."""
        signature = _signature(self.root) if signature is None else signature
        try:
            fresh = open_snapshot(self.root, self.snapshot.generation + 1)
        except Exception as exc:  # any failure: the old snapshot keeps serving
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if reason != self.stale:
                log.warning(
                    "could not reopen %s (still serving the last good copy): %s", self.root, reason
                )
            self.stale = reason
            return False
        self.snapshot = fresh
        self._signature = signature
        self.stale = None
        log.info("reopened %s: %d keyframes", self.root, len(fresh))
        return True
