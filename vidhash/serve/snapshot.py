"""The index as the web service sees it: one opened ``Index`` plus what is derived from it.

Contracts:

* A :class:`Snapshot` is built once per (re)open and never changes afterwards, so a
  request that took one keeps a consistent view even if the index is swapped meanwhile.
  Everything a request needs that ``vidhash.Index`` does not offer directly (a keyframe's
  row number, a video's keyframes in time order, the concepts with their keyframes, a
  Hamming searcher per concept) is computed here, at open time, never per request.
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
from pathlib import Path, PurePath

import numpy as np

from vidhash.index.paths import SEARCH_DIR
from vidhash.index.search import HammingSearcher, Index
from vidhash.index.searchfile import MANIFEST
from vidhash.index.store import IndexStore

log = logging.getLogger("vidhash.serve")

_WATCHED = ("meta", "videos", "keyframes", "annotations")
_MANIFEST = Path(SEARCH_DIR) / MANIFEST


@dataclass(frozen=True)
class Concept:
    name: str
    group: str | None
    rows: np.ndarray  # row numbers (search order) of the keyframes carrying it
    searcher: HammingSearcher  # over exactly those rows' codes, in that order


class Snapshot:
    """One opened index with the lookup tables the service needs. Read-only after init."""

    def __init__(self, index: Index, groups: dict[str, str], generation: int) -> None:
        self.index = index
        self.generation = generation
        self.opened_at = time.time()
        frame = index.keyframes  # row order == the row numbers Index.search_arrays returns
        self.ids = frame["keyframe_id"].to_numpy(dtype=object)
        self.video_ids = frame["video_id"].to_numpy(dtype=object)
        self.video_paths = frame["video_path"].to_numpy(dtype=object)
        names = {p: PurePath(p).name for p in set(self.video_paths.tolist())}
        self.video_names = np.array([names[p] for p in self.video_paths.tolist()], dtype=object)
        self.pts = frame["pts_time"].to_numpy(dtype=np.float64)
        images = frame["image_path"]  # pandas may give NaN for a missing path: make it None
        self.image_paths = images.astype(object).where(images.notna(), None).to_numpy()
        # Ids are ASCII; a sorted bytes array finds a row by binary search in C.
        self._id_keys = np.asarray(self.ids.tolist(), dtype="S") if len(self.ids) else None
        self._id_order = None
        if self._id_keys is not None and not np.all(self._id_keys[:-1] < self._id_keys[1:]):
            self._id_order = np.argsort(self._id_keys, kind="stable")
            self._id_keys = self._id_keys[self._id_order]
        self.videos: dict[str, np.ndarray] = {}
        for video_id, rows in frame.groupby("video_id", sort=False).indices.items():
            rows = np.asarray(rows, dtype=np.int64)
            self.videos[video_id] = rows[np.argsort(self.pts[rows], kind="stable")]
        self.video_order = sorted(self.videos, key=lambda v: self.video_paths[self.videos[v][0]])
        self.concepts = self._concepts(groups)

    def _concepts(self, groups: dict[str, str]) -> dict[str, Concept]:
        rows_of: dict[str, list[int]] = {}
        for row, kid in enumerate(self.ids.tolist()):
            for name in self.index.concepts_of(kid):
                rows_of.setdefault(name, []).append(row)
        if not rows_of:
            return {}
        annotated = sorted({r for rows in rows_of.values() for r in rows})
        position = {row: i for i, row in enumerate(annotated)}
        codes = np.stack([self.index.code_of(self.ids[r]) for r in annotated])
        out = {}
        for name in sorted(rows_of):
            rows = np.asarray(rows_of[name], dtype=np.int64)
            searcher = HammingSearcher(codes[[position[r] for r in rows.tolist()]])
            out[name] = Concept(name, groups.get(name), rows, searcher)
        return out

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, keyframe_id: str) -> int | None:
        """The row number of a keyframe, or None when it is not in the index."""
        if self._id_keys is None:
            return None
        try:
            key = keyframe_id.encode("ascii")
        except UnicodeEncodeError:
            return None
        i = int(np.searchsorted(self._id_keys, key))
        if i >= len(self._id_keys) or self._id_keys[i] != key:
            return None
        return int(self._id_order[i]) if self._id_order is not None else i

    def search(
        self,
        code: np.ndarray,
        k: int,
        concept: str | None = None,
        exclude_video: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: (distances, row numbers), by distance then keyframe id.

        ``concept`` restricts the candidates to that concept's keyframes (exactly, inside
        FAISS, no over-fetching); ``exclude_video`` leaves out one video's keyframes.
        """
        if concept is None:
            exclude = None if exclude_video is None else [{exclude_video}]
            distances, rows = self.index.search_arrays(code, k=k, exclude_video_ids=exclude)
            return distances[0], rows[0]
        subset = self.concepts[concept]
        allowed = None
        if exclude_video is not None:
            allowed = self.video_ids[subset.rows] != exclude_video
        d, r = subset.searcher.search(code[None], k, allowed)
        keep = r[0] >= 0
        return d[0][keep], subset.rows[r[0][keep]]


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
    table = IndexStore.open(root).read_table("annotations")
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
