"""Keeping the search file (:mod:`vidhash.index.search.file`) current, under the writer lock.

:class:`SearchWriter` is the tables' :class:`~vidhash.index.store.store.Keeper`: the store
calls it without importing it, and :class:`IndexStore` is the index writer that plugs it
in (``vidhash.index.IndexStore``: what ingest, annotate and the Python API open).

* :meth:`SearchWriter.update` runs after every commit, drop or videos-row rewrite of the
  store, with the part files it touched: their fingerprints are updated, each input whose
  keyframes part changed has its old rows marked dead and its new rows written as a new
  segment (from the table just committed, without reading Parquet again), then one
  manifest is written. Cost: a small segment and a small manifest per input, fsynced.
* Segments are merged like a binary counter: while the newest holds at least as many live
  rows as the one before it, the two become one, so each row is rewritten about
  log2(rows / rows per input) times over the index's life, and a search sees a few
  segments (one per power of two), the largest with multi-index hashing tables. A segment
  with more dead rows than live ones, or with tables of another layout than its size
  calls for (:func:`vidhash.index.search.mih.substring_bits`), is rewritten alone.
* :meth:`SearchWriter.sync` reconciles the search file with the Parquet files (a writer's
  start, a stale open): inputs whose keyframes part fingerprint differs from the one
  recorded with their rows are redone, new ones added, gone ones marked dead; a file
  made by another model, an unreadable manifest or segment: rebuilt from every part.

``VIDHASH_SEARCH_FILE=off`` in the environment makes a writer leave the search file alone
(it is then stale, and rebuilt on the next open or write): only for measuring its cost.
A stale or missing file found by an open is repaired by :mod:`vidhash.index.search.repair`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vidhash.errors import IndexMissingError
from vidhash.fsutil import atomic_write_bytes
from vidhash.index.search import mih, segment
from vidhash.index.search.arrayfile import DamagedFile, write_arrays
from vidhash.index.search.file import (
    MANIFEST,
    Concepts,
    Fingerprint,
    Manifest,
    entry_hash,
    source_files,
)
from vidhash.index.search.file import fingerprint as stat_fingerprint
from vidhash.index.store.layout import (
    ANNOTATIONS_SCHEMA,
    PRIMARY_STATUSES,
    keyframes_schema,
    part_key,
    read_parquet,
    read_parts,
)
from vidhash.index.store.paths import ANNOTATIONS_FILE, SEARCH_DIR, descriptor_dims
from vidhash.index.store.store import IndexTables

log = logging.getLogger("vidhash.index")

MERGE_RATIO = 1.0
MAX_SEGMENTS = 16
BUILD_ROWS = 2_000_000  # rows read from Parquet per segment when building from scratch


def enabled() -> bool:
    return os.environ.get("VIDHASH_SEARCH_FILE", "on").lower() != "off"


@dataclass
class Piece:
    """One segment in the manifest, with its dead inputs."""

    file: str
    seg: segment.Segment
    dead: set[int]

    def live_rows(self) -> int:
        rows = self.seg.arrays["video_rows"]
        return len(self.seg) - int(rows[list(self.dead)].sum()) if self.dead else len(self.seg)

    def entry(self) -> dict[str, Any]:
        return {"file": self.file, "rows": len(self.seg), "dead": sorted(self.dead)}


class SearchWriter:
    """The search file of one index whose writer lock is held."""

    def __init__(self, store: IndexTables) -> None:
        self.store = store
        self.folder = store.root / SEARCH_DIR
        self.files: dict[str, Fingerprint] = {}
        self.digest = 0
        self.generation = 0
        self.pieces: list[Piece] = []
        self.live: dict[str, tuple[Piece, int, Fingerprint]] = {}
        self.concepts: str | None = None
        self.annotations: list[int] | None = None
        self._new = 0

    # ------------------------------------------------------------------ reconcile

    def sync(self) -> None:
        """Make the search file match the Parquet files (see the module's contracts)."""
        meta = manifest_meta(self.store.meta)
        self.files = source_files(self.store.root)
        self.digest = sum(entry_hash(r, fp) for r, fp in self.files.items()) % (1 << 64)
        manifest = Manifest.read(self.store.root)
        self.pieces = []
        if manifest is not None and manifest.meta == meta:
            self.generation = manifest.generation
            try:
                self.pieces = [
                    Piece(s["file"], segment.Segment.load(self.folder / s["file"], _bits(meta),
                                                          descriptor_dims=descriptor_dims(meta)),
                          set(s.get("dead", [])))
                    for s in manifest.segments
                ]  # fmt: skip
                self.concepts, self.annotations = manifest.concepts, manifest.annotations
            except (OSError, DamagedFile, ValueError, KeyError):
                log.warning("%s: search file unreadable; rebuilding it", self.store.root)
                manifest, self.pieces = None, []
        elif manifest is not None:
            self.generation = manifest.generation
        self._index_live()
        current = manifest is not None and manifest.meta == meta
        if current and manifest.current(self.files):
            if not any(map(self._outdated, self.pieces)):
                self._collect_garbage()
                return
            self._apply(set(), {}, meta)  # only rewrites: tables of another layout
            return
        affected = set(self.live) | set(self.store.committed())
        self._apply(affected, {}, meta, whole=not self.pieces)

    def update(self, touched: dict[Path, str], fresh: dict[Path, pa.Table]) -> None:
        """After a store write: refresh the fingerprints of the files it touched (file ->
        the input it belongs to) and the rows of those inputs."""
        if not enabled():
            return
        for path in touched:
            self._set_fingerprint(f"{path.parent.name}/{path.name}", stat_fingerprint(path))
        affected = {video_path for video_path in touched.values() if video_path}
        self._apply(affected, fresh, manifest_meta(self.store.meta))

    # ------------------------------------------------------------------ internals

    def _set_fingerprint(self, rel: str, fp: Fingerprint | None) -> None:
        old = self.files.pop(rel, None)
        if old is not None:
            self.digest = (self.digest - entry_hash(rel, old)) % (1 << 64)
        if fp is not None:
            self.files[rel] = fp
            self.digest = (self.digest + entry_hash(rel, fp)) % (1 << 64)

    def _index_live(self) -> None:
        self.live = {}
        for piece in self.pieces:
            parts = piece.seg.arrays["video_part"]
            for vno in range(piece.seg.n_videos):
                if vno not in piece.dead:
                    fp = tuple(int(x) for x in parts[vno])
                    self.live[piece.seg.video_path(vno)] = (piece, vno, fp)  # type: ignore[assignment]

    def _wanted(self, path: str) -> Fingerprint | None:
        """The keyframes part fingerprint an input's rows must come from (None: no rows)."""
        row = self.store.row(path)
        if row is None or row["status"] not in PRIMARY_STATUSES:
            return None
        return self.files.get(f"keyframes/part-{part_key(path)}.parquet")

    def _apply(
        self, affected: set[str], fresh: dict[Path, pa.Table], meta: dict, whole: bool = False
    ) -> None:
        """Mark dead and add rows for ``affected`` inputs, compact, write the manifest.

        ``whole``: a rebuild from nothing ends as one segment (built in ``BUILD_ROWS``
        pieces, then merged once)."""
        additions: list[tuple[str, Fingerprint]] = []
        for path in sorted(affected):
            want = self._wanted(path)
            have = self.live.get(path)
            if have is not None and have[2] != want:
                have[0].dead.add(have[1])
                del self.live[path]
            if want is not None and path not in self.live:
                additions.append((path, want))
        self._add(additions, fresh, meta)
        if whole and len(self.pieces) > 1:
            self.pieces = [self._merge(self.pieces, _bits(meta))]
        self._compact(_bits(meta))
        self._refresh_concepts()
        self._write_manifest(meta)

    def _add(self, additions, fresh: dict[Path, pa.Table], meta: dict) -> None:
        bits = _bits(meta)
        schema = keyframes_schema(bits, descriptor_dims(meta))
        batch: list[pa.Table] = []
        parts: dict[str, Fingerprint] = {}
        for path, fp in additions:
            part = self.store.part("keyframes", path)
            table = fresh.get(part)
            if table is None:
                table, broken = read_parts([part], schema)
                if broken or not table.num_rows:
                    continue  # unreadable: no rows until the writer's check redoes it
            batch.append(table.select(schema.names).cast(schema))
            parts[path] = fp
            if sum(t.num_rows for t in batch) >= BUILD_ROWS:
                self._add_segment(pa.concat_tables(batch), bits, parts)
                batch, parts = [], {}
        if batch:
            self._add_segment(pa.concat_tables(batch), bits, parts)

    def _add_segment(self, table: pa.Table, bits: int, parts: dict[str, Fingerprint]) -> None:
        seg = segment.from_arrow(table, bits, parts)
        piece = self._save(seg)
        self.pieces.append(piece)
        for vno in range(seg.n_videos):
            path = seg.video_path(vno)
            self.live[path] = (piece, vno, parts[path])

    def _save(self, seg: segment.Segment) -> Piece:
        name = f"seg-{self.generation + 1:010d}-{self._new}.bin"
        self._new += 1
        seg.save(self.folder / name)
        loaded = segment.Segment.load(self.folder / name, seg.code_bits,
                                      descriptor_dims=seg.descriptor_dims)  # fmt: skip
        return Piece(name, loaded, set())

    def _outdated(self, piece: Piece) -> bool:
        """More dead rows than live ones, or MIH tables other than its size calls for."""
        rows = len(piece.seg)
        if piece.dead and piece.live_rows() < rows / 2:
            return True
        want = mih.chunks(piece.seg.code_bits, mih.substring_bits(rows))
        have = piece.seg.tables.spec if piece.seg.tables is not None else None
        return have != (want if rows >= segment.MIH_MIN_ROWS else None)

    def _compact(self, bits: int) -> None:
        self.pieces = [p for p in self.pieces if p.live_rows() > 0]
        for i, piece in enumerate(self.pieces):
            if self._outdated(piece):
                self.pieces[i] = self._merge([piece], bits)
        while len(self.pieces) >= 2 and (
            self.pieces[-2].live_rows() <= MERGE_RATIO * self.pieces[-1].live_rows()
            or len(self.pieces) > MAX_SEGMENTS
        ):
            merged = self._merge(self.pieces[-2:], bits)
            self.pieces[-2:] = [merged]

    def _merge(self, pieces: list[Piece], bits: int) -> Piece:
        live = [(p.seg, np.array(sorted(p.dead), np.int64)) for p in pieces]
        merged = self._save(segment.merge(live, bits))
        for vno in range(merged.seg.n_videos):
            path = merged.seg.video_path(vno)
            fp = tuple(int(x) for x in merged.seg.arrays["video_part"][vno])
            self.live[path] = (merged, vno, fp)  # type: ignore[assignment]
        return merged

    def _refresh_concepts(self) -> None:
        """Rebuild the concepts file when the annotations table is not the one it came from."""
        fp = self.files.get(ANNOTATIONS_FILE)
        want = list(fp) if fp is not None else None
        if want == self.annotations and (want is None or self.concepts):
            return
        self.annotations, self.concepts = want, None
        if fp is None:
            return
        table = read_parquet(self.store.root / ANNOTATIONS_FILE, ANNOTATIONS_SCHEMA)
        concepts = Concepts.from_mapping(labels_of(table))
        name = f"concepts-{self.generation + 1:010d}.bin"
        write_arrays(self.folder / name, concepts.arrays(), {"names": concepts.names})
        self.concepts = name

    def _write_manifest(self, meta: dict) -> None:
        self.generation += 1
        self._new = 0
        manifest = Manifest(
            self.generation,
            meta,
            len(self.files),
            self.digest,
            [p.entry() for p in self.pieces],
            self.concepts,
            self.annotations,
        )
        self.folder.mkdir(exist_ok=True)
        atomic_write_bytes(self.folder / MANIFEST, manifest.to_json().encode())
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        keep = {p.file for p in self.pieces} | {MANIFEST, self.concepts}
        if not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            if entry.name not in keep and not entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def _bits(meta: dict) -> int:
    return int(meta["code_bits"])


def labels_of(table: pa.Table) -> dict[str, list[str]]:
    """keyframe id -> its concepts, from an annotations table."""
    labels: dict[str, list[str]] = {}
    ids, concepts = table.column("keyframe_id").to_pylist(), table.column("concept").to_pylist()
    for kid, concept in zip(ids, concepts, strict=True):
        labels.setdefault(kid, []).append(concept)
    return labels


def manifest_meta(meta: dict[str, Any] | None) -> dict[str, Any]:
    """The meta row as the manifest stores it (JSON: the timestamp as ISO 8601 text)."""
    if meta is None:
        raise IndexMissingError("index has no model recorded yet")
    out = dict(meta)
    if isinstance(out.get("created"), dt.datetime):
        out["created"] = out["created"].isoformat()
    return out


class IndexStore(IndexTables):
    """The index writer and reader: its tables, and its search file kept at every commit.

    What ``vidhash index``, ``vidhash annotate`` and the Python API open
    (``vidhash.index.IndexStore``; :meth:`IndexTables.open` as is). It lives here, not in
    the store, because it is where the two rooms meet: the store only knows its hook.
    """

    def new_keeper(self) -> SearchWriter | None:
        """The search file's writer (none with ``VIDHASH_SEARCH_FILE=off``)."""
        return SearchWriter(self) if enabled() else None
