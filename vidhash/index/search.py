"""Exact Hamming search over an index, loaded once: ``Index.open(path).search(codes)``.

The engine is FAISS ``IndexBinaryFlat`` over the codes zero-padded to a multiple of 64
bits (same distances, 8-byte popcount kernels). Results are exact and deterministic:
ordered by distance, then keyframe id. Rows are sorted by keyframe id before they go into
FAISS, so a FAISS row number orders like the keyframe id, and FAISS's counting top-k
(``use_heap = False``) keeps, for each distance, the lowest row numbers it meets in its
in-order scan of the database: the k best by (distance, row) exactly, whatever the thread
count. ``tests/test_search.py`` checks that against brute force on code sets full of ties.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vidhash.index.codes import as_code_array, codes_from_arrow, pad_to_64
from vidhash.index.store import IndexStore

# FAISS's counting top-k holds (queries x (bits+1) x k) int64 ids; keep a batch under this.
_MC_BUDGET_BYTES = 64 << 20


@dataclass
class Hit:
    """One search result. ``image_path`` is absolute (or None without images)."""

    keyframe_id: str
    video_id: str
    video_path: str
    pts_time: float
    distance: int
    image_path: str | None = None
    concepts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class HammingSearcher:
    """Exact top-k Hamming search over packed codes; row numbers in, row numbers out."""

    def __init__(self, codes: np.ndarray) -> None:
        codes = as_code_array(codes)
        self.nbytes = codes.shape[1]
        padded = pad_to_64(codes)
        self._faiss = faiss.IndexBinaryFlat(padded.shape[1] * 8)
        self._faiss.use_heap = False  # counting top-k: ties come out in row order
        if len(padded):
            self._faiss.add(padded)

    def __len__(self) -> int:
        return int(self._faiss.ntotal)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by (distance, row): (Q, k) int32 distances and int64 rows, -1 past the end.

        ``allowed`` is an optional boolean mask over rows; excluded rows are skipped inside
        FAISS (an ``IDSelectorBitmap``), so exclusion costs no over-fetching.
        """
        queries = pad_to_64(as_code_array(queries, self.nbytes))
        n_queries = len(queries)
        distances = np.full((n_queries, k), np.iinfo(np.int32).max, dtype=np.int32)
        rows = np.full((n_queries, k), -1, dtype=np.int64)
        if k <= 0 or n_queries == 0 or len(self) == 0:
            return distances, rows
        params = None
        if allowed is not None:
            if not allowed.any():
                return distances, rows
            bitmap = np.packbits(allowed.astype(bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            params = faiss.SearchParameters(sel=selector)
        k_faiss = min(k, len(self))
        buckets = queries.shape[1] * 8 + 1
        batch = max(1, _MC_BUDGET_BYTES // (buckets * k_faiss * 8))
        for start in range(0, n_queries, batch):
            chunk = queries[start : start + batch]
            d, i = self._faiss.search(chunk, k_faiss, params=params)
            distances[start : start + batch, :k_faiss] = d
            rows[start : start + batch, :k_faiss] = i
        # Already in (distance, row) order; sort anyway so the contract never rests on it.
        order = np.lexsort((rows, distances), axis=-1)
        distances = np.take_along_axis(distances, order, axis=-1)
        rows = np.take_along_axis(rows, order, axis=-1)
        missing = rows < 0
        rows[missing] = -1
        distances[missing] = np.iinfo(np.int32).max
        if params is not None:
            del selector, bitmap  # FAISS reads both through raw pointers: alive until here
        return distances, rows

    def range(
        self, queries: np.ndarray, radius: int, allowed: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every row within ``radius`` (inclusive) of each query, in (distance, row) order."""
        queries = pad_to_64(as_code_array(queries, self.nbytes))
        if len(self) == 0:
            empty = (np.zeros(0, np.int32), np.zeros(0, np.int64))
            return [empty for _ in range(len(queries))]
        lims, dist, rows = self._faiss.range_search(queries, int(radius) + 1)
        out = []
        for q in range(len(queries)):
            d = dist[lims[q] : lims[q + 1]].astype(np.int32)
            r = rows[lims[q] : lims[q + 1]].astype(np.int64)
            keep = d <= radius
            if allowed is not None:
                keep &= allowed[r]
            d, r = d[keep], r[keep]
            order = np.lexsort((r, d))
            out.append((d[order], r[order]))
        return out


# Row columns an Index keeps in memory, and those repeated for every keyframe of a video.
_ROW_COLUMNS = (
    "keyframe_id",
    "video_id",
    "video_path",
    "pts_time",
    "frame_index",
    "width",
    "height",
    "rotation",
    "image_path",
)
_PER_VIDEO_COLUMNS = ("video_id", "video_path")


class _SortedIds:
    """Read-only sequence view of a sorted Arrow string column, for ``bisect``."""

    def __init__(self, column: pa.StringArray) -> None:
        self._column = column

    def __len__(self) -> int:
        return len(self._column)

    def __getitem__(self, i: int) -> str:
        return self._column[i].as_py()


class Index:
    """A vidhash index opened for search: codes in FAISS, rows and annotations in memory.

    Rows stay in Arrow (about 150 bytes per keyframe rather than ~600 as Python objects);
    :attr:`keyframes` builds a pandas view on first use.
    """

    def __init__(
        self,
        root: Path,
        keyframes: pd.DataFrame | pa.Table,
        codes: np.ndarray,
        code_bits: int,
        meta: dict,
        concepts: dict[str, list[str]],
    ) -> None:
        if isinstance(keyframes, pd.DataFrame):
            keyframes = pa.Table.from_pandas(keyframes, preserve_index=False)
        # Constant columns (model_id, code_bits) live in meta; per-video strings are
        # dictionary-encoded: together that halves the memory of the rows.
        keep = [c for c in keyframes.column_names if c in _ROW_COLUMNS]
        table = keyframes.select(keep).combine_chunks()
        for name in _PER_VIDEO_COLUMNS:
            i = table.schema.get_field_index(name)
            column = table.column(i)
            if not pa.types.is_dictionary(column.type):
                table = table.set_column(i, name, pc.dictionary_encode(column))
        self.root = Path(root)
        self.code_bits = code_bits
        self.meta = meta
        self._table = table
        self._frame: pd.DataFrame | None = None
        self._codes = as_code_array(codes)
        self._searcher = HammingSearcher(self._codes)
        self._concepts = concepts
        self._columns = {
            name: self._table.column(name).chunk(0)
            if self._table.column(name).num_chunks
            else pa.array([], self._table.schema.field(name).type)
            for name in ("keyframe_id", "video_id", "video_path", "pts_time", "image_path")
        }
        self._ids = _SortedIds(self._columns["keyframe_id"])
        # every id sorted (Index.open sorts): bisect finds a row in ~25 steps, no hash table
        ids = self._columns["keyframe_id"]
        self._sorted = len(ids) < 2 or bool(
            pc.all(pc.less(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py()
        )
        videos = self._columns["video_id"]
        self._video_code = videos.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self._video_number = {vid: n for n, vid in enumerate(videos.dictionary.to_pylist())}
        pa.default_memory_pool().release_unused()  # hand the loading scratch back to the OS

    @classmethod
    def open(cls, path: str | os.PathLike) -> Index:
        """Load an index once; raises ``IndexMissingError`` when there is none at path.

        Sees only committed inputs, so it is safe to open while ``vidhash index`` runs.
        """
        store = IndexStore.open(path)
        code_bits = store.code_bits
        table = store.read_arrow("keyframes").sort_by("keyframe_id")
        codes = codes_from_arrow(table.column("code"))
        annotations = store.read_table("annotations")
        concepts: dict[str, list[str]] = {}
        if len(annotations):
            grouped = annotations.groupby("keyframe_id")["concept"]
            concepts = {kid: sorted(set(values)) for kid, values in grouped}
        return cls(Path(path), table, codes, code_bits, dict(store.meta or {}), concepts)

    @property
    def keyframes(self) -> pd.DataFrame:
        """The keyframe rows (without codes) as pandas, in search row order (by id)."""
        if self._frame is None:
            frame = self._table.to_pandas()
            for name in _PER_VIDEO_COLUMNS:  # plain strings, not categoricals
                frame[name] = frame[name].astype(object)
            self._frame = frame
        return self._frame

    def record(self, keyframe_id: str) -> dict:
        """One keyframe's row as a dict (KeyError if it is not indexed)."""
        return self._table.slice(self._row(keyframe_id), 1).to_pylist()[0]

    def __len__(self) -> int:
        return self._table.num_rows

    @property
    def nbytes(self) -> int:
        return self._searcher.nbytes

    def code_of(self, keyframe_id: str) -> np.ndarray:
        """The stored (unpadded) code of one keyframe; KeyError if it is not indexed."""
        return self._codes[self._row(keyframe_id)].copy()

    def concepts_of(self, keyframe_id: str) -> list[str]:
        return list(self._concepts.get(keyframe_id, []))

    def _row(self, keyframe_id: str) -> int:
        if self._sorted:
            row = bisect.bisect_left(self._ids, keyframe_id)
            if row < len(self._ids) and self._ids[row] == keyframe_id:
                return row
        else:
            found = pc.index(self._columns["keyframe_id"], keyframe_id).as_py()
            if found >= 0:
                return found
        raise KeyError(f"keyframe {keyframe_id!r} is not in the index")

    # ------------------------------------------------------------------ search

    def search(
        self,
        codes: np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        exclude_video_ids: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
    ) -> list[list[Hit]]:
        """Exact Hamming top-k for one code (nbytes,) or a batch (Q, nbytes).

        Ordered by distance, then keyframe id. ``radius`` keeps hits at distance <= R
        (with ``k=None``: every hit within R). ``exclude_video_ids`` is one set of video
        ids for all queries, or a sequence with one set (or None) per query.
        """
        distances, rows = self.search_arrays(codes, k, radius, exclude_video_ids)
        flat = self._hits(
            np.concatenate(distances) if distances else np.zeros(0, np.int32),
            np.concatenate(rows) if rows else np.zeros(0, np.int64),
        )
        out, start = [], 0
        for r in rows:  # one Arrow take for the whole batch, then split per query
            out.append(flat[start : start + len(r)])
            start += len(r)
        return out

    def search_arrays(
        self,
        codes: np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        exclude_video_ids: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Like :meth:`search` but returns per-query arrays of distances and row numbers."""
        queries = as_code_array(codes, self.nbytes)
        if k is not None and k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if k is None and radius is None:
            raise ValueError("give k, radius, or both")
        if radius is not None and radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        groups = self._exclusion_groups(exclude_video_ids, len(queries))
        out_d: list[np.ndarray] = [np.zeros(0, np.int32)] * len(queries)
        out_r: list[np.ndarray] = [np.zeros(0, np.int64)] * len(queries)
        for excluded, query_rows in groups.items():
            allowed = self._allowed(excluded)
            subset = queries[query_rows]
            if k is None:
                results = self._searcher.range(subset, radius, allowed)
            else:
                d, r = self._searcher.search(subset, k, allowed)
                results = []
                for dq, rq in zip(d, r, strict=True):
                    keep = rq >= 0
                    if radius is not None:
                        keep &= dq <= radius
                    results.append((dq[keep], rq[keep]))
            for q, (d, r) in zip(query_rows, results, strict=True):
                out_d[q], out_r[q] = d, r
        return out_d, out_r

    def search_ids(
        self,
        keyframe_ids: Sequence[str],
        k: int | None = 10,
        radius: int | None = None,
        exclude_same_video: bool = False,
    ) -> list[list[Hit]]:
        """Query with indexed keyframes; optionally leave out each query's own video."""
        rows = [self._row(kid) for kid in keyframe_ids]
        exclude = None
        if exclude_same_video:
            exclude = [{self._columns["video_id"][r].as_py()} for r in rows]
        return self.search(self._codes[rows], k, radius, exclude)

    def _exclusion_groups(self, exclude, n_queries: int) -> dict[frozenset, list[int]]:
        """Group queries by their exclusion set: one FAISS pass per distinct set."""
        if exclude is None:
            return {frozenset(): list(range(n_queries))}
        if isinstance(exclude, str):
            return {frozenset([exclude]): list(range(n_queries))}
        exclude = list(exclude)
        per_query = len(exclude) > 0 and all(
            e is None or (not isinstance(e, str) and isinstance(e, Iterable)) for e in exclude
        )
        if not per_query:
            return {frozenset(exclude): list(range(n_queries))}
        if len(exclude) != n_queries:
            raise ValueError(f"exclude_video_ids has {len(exclude)} sets for {n_queries} queries")
        groups: dict[frozenset, list[int]] = {}
        for q, e in enumerate(exclude):
            key = frozenset([e] if isinstance(e, str) else (e or ()))
            groups.setdefault(key, []).append(q)
        return groups

    def _allowed(self, excluded: frozenset) -> np.ndarray | None:
        numbers = [self._video_number[v] for v in excluded if v in self._video_number]
        if not numbers:
            return None
        return ~np.isin(self._video_code, numbers)

    def _hits(self, distances: np.ndarray, rows: np.ndarray) -> list[Hit]:
        if len(rows) == 0:
            return []
        picked = {name: col.take(pa.array(rows)).to_pylist() for name, col in self._columns.items()}
        hits = []
        for i, d in enumerate(distances.tolist()):
            kid = picked["keyframe_id"][i]
            image = picked["image_path"][i]
            hits.append(
                Hit(
                    keyframe_id=kid,
                    video_id=picked["video_id"][i],
                    video_path=picked["video_path"][i],
                    pts_time=float(picked["pts_time"][i]),
                    distance=int(d),
                    image_path=str(self.root / image) if image else None,
                    concepts=list(self._concepts.get(kid, [])),
                )
            )
        return hits
