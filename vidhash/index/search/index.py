"""Exact Hamming search over an index: ``Index.open(path).search(code)``.

``Index.open`` reads the index's search file (:mod:`vidhash.index.search.file`): memory
maps of the codes (zero-padded to 64 bits), keyframe ids, inputs and times, kept by the
writer at every commit, so opening costs about the same for a thousand keyframes or ten
million, and a search reads only the pages it touches. A file that is not current is
repaired first (:mod:`vidhash.index.search.repair`). Nothing here imports pandas, pyarrow
or FAISS until something needs them (a stale file to rebuild, a large flat scan,
:attr:`Index.keyframes`), so a one-off ``vidhash search`` starts fast.

**One query or a batch.** :meth:`Index.search` of one code (``(nbytes,)`` or ``bytes``)
returns one list of hits, as ``vidhash.Index.search_image`` does; a batch (``(Q,
nbytes)``) returns a list per query. :meth:`Index.search_ids` likewise for one keyframe id
(a ``str``) or a list of them. :meth:`Index.search_arrays` always answers per query.

Results are exact and deterministic: ordered by distance, then keyframe id, exactly what
a flat scan of every code gives (:mod:`vidhash.index.search.engine`: multi-index hashing where it
pays, flat scans elsewhere; ``tests/test_search.py`` and ``tests/test_search_engine.py``
check it against brute force on code sets full of ties).

**Two stages.** When the index stores descriptors (a model with one built it) and the
query has its own (``descriptors=``: what the model's ``embed`` gives, or the stored one
of a keyframe query), the codes' exact top ``candidates`` (default
:data:`RERANK_CANDIDATES`; or every code within ``radius``) are re-ranked by descriptor
similarity (the dot product of unit vectors: cosine), ties kept in (distance, keyframe
id) order, and the best ``k`` returned. Each hit carries its Hamming ``distance`` and its
``score`` (the cosine; None without descriptors). ``rerank=False`` gives the pure Hamming
ranking. The candidate count was chosen with ``benchmarks/descriptor.py``
(docs/RESULTS.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.index.search import engine
from vidhash.index.search.file import Concepts, SearchView, read_current
from vidhash.index.search.queries import (
    check_limits,
    exclusion_groups,
    one_code,
    query_descriptors,
)
from vidhash.index.store.codes import as_code_array, pad_to_64
from vidhash.index.store.paths import descriptor_dims
from vidhash.metrics import cosine

# Hamming candidates a two-stage search re-ranks (benchmarks/descriptor.py).
RERANK_CANDIDATES = 100
NO_DESCRIPTORS = (
    "this index stores no descriptors (built before vidhash 0.2, or by a model without "
    "one): results are by codes only; rebuild it with `vidhash index ... --reindex` for "
    "two-stage search"
)
Answer = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


@dataclass
class Hit:
    """One search result. ``image_path`` is absolute (or None without images)."""

    keyframe_id: str
    video_id: str
    video_path: str
    pts_time: float
    distance: int
    score: float | None = None  # descriptor cosine with the query (None: codes only)
    image_path: str | None = None
    concepts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Index:
    """A vidhash index opened for search: the search file's segments, memory-mapped.

    Row numbers (:meth:`search_arrays`, :attr:`keyframes`) are the live rows in keyframe
    id order, as the flat engine numbered them. With several segments that numbering is
    made on first use (one sort of the ids, which are sorted runs already).
    """

    def __init__(self, root: Path, view: SearchView) -> None:
        self.root = Path(root)
        self.view = view
        self.meta = view.meta
        self.code_bits = view.code_bits
        self._nbytes = (self.code_bits + 7) // 8
        self._segments = view.segments
        self._dead = view.dead
        self._concepts = view.concepts
        dims = {seg.descriptor_dims for seg in self._segments} or {descriptor_dims(view.meta)}
        self.descriptor_dims = dims.pop() if len(dims) == 1 else 0
        self._concept_rows: dict[str, list[np.ndarray]] = {}
        live = [
            len(seg) - int(seg.arrays["video_rows"][dead].sum())
            for seg, dead in zip(self._segments, self._dead, strict=True)
        ]
        self._offsets = np.concatenate([[0], np.cumsum(live)]).astype(np.int64)
        self._rank: dict[int, np.ndarray] = {}
        self._order: tuple[np.ndarray, np.ndarray] | None = None
        self._frame = None

    @classmethod
    def open(cls, path: str | os.PathLike, access: str = "map") -> Index:
        """Open an index for search; raises ``IndexMissingError`` when there is none.

        Sees only committed inputs, so it is safe to open while ``vidhash index`` runs.
        ``access="read"``: read the search file with ``pread`` as searches ask instead of
        mapping it (one-off processes: RSS holds only what they read; see
        :mod:`vidhash.index.search.arrayfile`).
        """
        view, manifest = read_current(path, access)
        if view is None:  # stale, missing or damaged: only now is the writer loaded
            from vidhash.index.search.repair import repair

            view = repair(Path(path), manifest, access)
        return cls(Path(path), view)

    @classmethod
    def from_table(
        cls,
        root: Path,
        keyframes,
        codes: np.ndarray,
        code_bits: int,
        meta: dict,
        concepts: dict[str, list[str]],
    ) -> Index:
        """An index held in memory: keyframe rows (pandas or Arrow) and their codes."""
        import pyarrow as pa

        from vidhash.index.search.segment import from_arrow
        from vidhash.index.store.codes import codes_to_arrow

        if not isinstance(keyframes, pa.Table):
            keyframes = pa.Table.from_pandas(keyframes, preserve_index=False)
        table = keyframes.append_column("code", codes_to_arrow(as_code_array(codes)))
        paths = set(table.column("video_path").to_pylist())
        seg = from_arrow(table, code_bits, dict.fromkeys(paths, (0, 0)))
        labels = Concepts.from_mapping(concepts) if concepts else None
        view = SearchView({**meta, "code_bits": code_bits}, [seg], [np.zeros(0, np.int32)], labels)
        return cls(Path(root), view)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def nbytes(self) -> int:
        return self._nbytes

    # ------------------------------------------------------------------ lookups

    def _find(self, keyframe_id: str) -> tuple[int, int]:
        for s, seg in enumerate(self._segments):
            row = seg.find(keyframe_id)
            if row >= 0 and not np.isin(seg.video[row], self._dead[s]):
                return s, row
        raise KeyError(f"keyframe {keyframe_id!r} is not in the index")

    def record(self, keyframe_id: str) -> dict:
        """One keyframe's row as a dict (KeyError if it is not indexed)."""
        s, row = self._find(keyframe_id)
        return self._segments[s].record(row)

    def code_of(self, keyframe_id: str) -> np.ndarray:
        """The stored (unpadded) code of one keyframe; KeyError if it is not indexed."""
        s, row = self._find(keyframe_id)
        return self._segments[s].code(row, self._nbytes)

    def concepts_of(self, keyframe_id: str) -> list[str]:
        return self._concepts.of(keyframe_id) if self._concepts is not None else []

    def _position(self, s: int, rows: np.ndarray) -> np.ndarray:
        """Segment rows -> positions among every segment's live rows, segment by segment."""
        if not len(self._dead[s]):
            return self._offsets[s] + rows
        if s not in self._rank:
            live = self._segments[s].live_mask(self._dead[s])
            self._rank[s] = np.cumsum(live) - 1
        return self._offsets[s] + self._rank[s][rows]

    def _id_order(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions in id order, row number of each position); None when they agree."""
        if len(self._segments) <= 1:
            return None
        if self._order is None:
            parts = []
            for seg, dead in zip(self._segments, self._dead, strict=True):
                live = seg.live_mask(dead)
                parts.append(np.asarray(seg.ids) if live is None else seg.ids[live])
            width = max([1, *(p.dtype.itemsize for p in parts)])
            ids = np.concatenate([p.astype(f"S{width}") for p in parts])
            by_id = np.argsort(ids, kind="stable")  # sorted runs: merged in linear time
            row_of = np.empty(len(by_id), np.int64)
            row_of[by_id] = np.arange(len(by_id))
            self._order = (by_id, row_of)
        return self._order

    @property
    def keyframes(self):
        """The keyframe rows (without codes) as pandas, in row-number order (by id)."""
        if self._frame is None:
            from vidhash.index.search.frame import keyframes_frame

            order = self._id_order()
            frame = keyframes_frame(self._segments, self._dead)
            if order is not None:
                frame = frame.take(order[0]).reset_index(drop=True)
            self._frame = frame
        return self._frame

    # ------------------------------------------------------------------ search

    def search(
        self,
        codes: np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        exclude_video_ids: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
        *,
        descriptors: np.ndarray | None = None,
        rerank: bool = True,
        candidates: int | None = None,
        concept: str | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k for one code: its hits, best first; for a batch: a list of hits per query.

        One code is ``(nbytes,)`` uint8 or ``bytes`` (with ``descriptors`` ``(D,)``); a batch
        is ``(Q, nbytes)`` (with ``descriptors`` ``(Q, D)``), even a batch of one. Codes
        only: ordered by distance, then keyframe id; ``radius`` keeps hits at distance <= R
        (with ``k=None``: every hit within R). With the queries' ``descriptors`` on an index
        that stores them, and ``rerank``, the two-stage order of the module docstring.
        ``exclude_video_ids`` is one set of video ids for all queries, or a sequence with
        one set (or None) per query; ``concept`` keeps only keyframes labelled with it
        (KeyError for a concept the index does not have).
        """
        answers = self._search(
            codes, k, radius, exclude_video_ids, descriptors=descriptors, rerank=rerank,
            candidates=candidates, concept=concept,
        )  # fmt: skip
        hits = [
            [
                self._hit(int(d), int(s), int(r), None if sc is None else float(sc[i]))
                for i, (d, s, r) in enumerate(zip(d_, s_, r_, strict=True))
            ]
            for d_, s_, r_, sc in answers
        ]
        return hits[0] if one_code(codes) else hits

    def search_arrays(
        self,
        codes: np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        exclude_video_ids: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
        **two_stage: Any,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Like :meth:`search` (same keywords) but returns per-query arrays of distances and
        row numbers (the rows of :attr:`keyframes`); one code is a batch of one here."""
        answers = self._search(codes, k, radius, exclude_video_ids, **two_stage)
        segs = np.concatenate([a[1] for a in answers]) if answers else np.zeros(0, np.int64)
        local = np.concatenate([a[2] for a in answers]) if answers else np.zeros(0, np.int64)
        rows = np.zeros(len(local), np.int64)
        for seg in np.unique(segs).tolist():  # one pass per segment for the whole batch
            at = segs == seg
            rows[at] = self._position(seg, local[at])
        if len(rows) and len(self._segments) > 1:
            rows = self._id_order()[1][rows]
        ends = np.cumsum([len(a[2]) for a in answers])
        out_r = np.split(rows, ends[:-1]) if answers else []
        return [a[0].astype(np.int32) for a in answers], out_r

    def search_ids(
        self,
        keyframe_ids: str | Sequence[str],
        k: int | None = 10,
        radius: int | None = None,
        exclude_same_video: bool = False,
        *,
        rerank: bool = True,
        candidates: int | None = None,
        concept: str | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """Query with indexed keyframes (their stored codes and descriptors); optionally
        leave out each query's own video. One id (a ``str``): its hits; a sequence of ids:
        a list of hits per id."""
        one = isinstance(keyframe_ids, str)
        found = [self._find(kid) for kid in ([keyframe_ids] if one else keyframe_ids)]
        codes = np.stack([self._segments[s].code(r, self._nbytes) for s, r in found])
        descriptors = None
        if self.descriptor_dims:
            descriptors = np.stack([np.asarray(self._segments[s].desc[r]) for s, r in found])
        exclude = None
        if exclude_same_video:
            exclude = [
                {self._segments[s].video_id(int(self._segments[s].video[r]))} for s, r in found
            ]
        hits = self.search(
            codes, k, radius, exclude, descriptors=descriptors, rerank=rerank,
            candidates=candidates, concept=concept,
        )  # fmt: skip
        return hits[0] if one else hits

    def descriptor_of(self, keyframe_id: str) -> np.ndarray | None:
        """The stored descriptor (float16) of one keyframe; None when the index has none."""
        if not self.descriptor_dims:
            return None
        s, row = self._find(keyframe_id)
        return np.array(self._segments[s].desc[row])

    def _search(
        self, codes, k, radius, exclude, *, descriptors=None, rerank=True, candidates=None,
        concept=None,
    ) -> list[Answer]:  # fmt: skip
        queries = as_code_array(codes, self.nbytes)
        check_limits(k, radius, candidates)
        query_desc = query_descriptors(descriptors, len(queries), self.descriptor_dims)
        two_stage = rerank and query_desc is not None
        first_k = k  # two stages: the top `candidates`, or every code within `radius`
        if two_stage and k is not None:
            first_k = None if radius is not None else max(k, candidates or RERANK_CANDIDATES)
        allowed = self._rows_of_concept(concept) if concept is not None else None
        padded = pad_to_64(queries)
        out: list[Any] = [None] * len(queries)
        for excluded, query_rows in exclusion_groups(exclude, len(queries)).items():
            blocked = [
                np.union1d(dead, seg.video_numbers(excluded)) if excluded else dead
                for seg, dead in zip(self._segments, self._dead, strict=True)
            ]
            answers = engine.search(
                self._segments, blocked, padded[query_rows], first_k, radius, allowed
            )
            for q, (d, segs, rows) in zip(query_rows, answers, strict=True):
                if query_desc is None:
                    out[q] = (d, segs, rows, None)
                    continue
                scores = cosine(query_desc[q][None], self._descriptors(segs, rows))[0]
                order = np.argsort(-scores, kind="stable") if two_stage else slice(None)
                out[q] = tuple(a[order][:k] for a in (d, segs, rows, scores))
        return out

    def _descriptors(self, segs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Stored descriptors (float16) of (segment, row) pairs."""
        out = np.zeros((len(rows), self.descriptor_dims), np.float16)
        for s in np.unique(segs).tolist():
            at = segs == s
            out[at] = np.asarray(self._segments[s].desc[rows[at]])
        return out

    def _rows_of_concept(self, concept: str) -> list[np.ndarray]:
        """Per segment, the sorted rows labelled ``concept`` (cached per index)."""
        if concept not in self._concept_rows:
            if self._concepts is None or concept not in self._concepts.names:
                raise KeyError(f"no keyframe of this index is labelled {concept!r}")
            ids = self._concepts.ids_of(concept)
            self._concept_rows[concept] = [seg.rows_of(ids) for seg in self._segments]
        return self._concept_rows[concept]

    def _hit(self, distance: int, s: int, row: int, score: float | None = None) -> Hit:
        seg = self._segments[s]
        vno = int(seg.video[row])
        kid = seg.keyframe_id(row)
        image = seg.image_path(row)
        return Hit(
            keyframe_id=kid,
            video_id=seg.video_id(vno),
            video_path=seg.video_path(vno),
            pts_time=float(seg.arrays["pts"][row]),
            distance=distance,
            score=score,
            image_path=str(self.root / image) if image else None,
            concepts=self.concepts_of(kid),
        )
