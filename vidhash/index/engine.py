"""Exact Hamming top-k and radius search over the segments of a search file.

Contract: for every query the answer is exactly the flat scan's over the live rows, in
(distance, keyframe id) order: same rows, same distances, same tie order.

* Per segment, rows are in keyframe id order, so (distance, row) is (distance, id) there.
  A segment with multi-index hashing tables answers by MIH (:mod:`vidhash.index.mih`)
  unless a query's candidates would pass ``len(segment) / MIH_BUDGET_DIVISOR`` rows
  (uniform random codes, large radii, filters that leave few rows); those queries, and
  every query on a segment without tables, are scanned flat: numpy for small work (no
  FAISS import for one query in a CLI), FAISS's counting top-k over the memory-mapped codes
  for large batches (ties come out in row order, as in :class:`vidhash.index.flat.HammingSearcher`).
* The segments' answers are merged by (distance, keyframe id), comparing the ids' bytes.

``blocked`` holds, per segment, the video numbers whose rows never count: inputs dropped
or redone since the segment was written, and the inputs a query excludes.
"""

from __future__ import annotations

import numpy as np

from vidhash.index import mih
from vidhash.index.segment import Segment

MIH_BUDGET_DIVISOR = 16
MIH_BATCH = 32
FLAT_FAISS_MIN_WORK = 4_000_000  # queries x rows from which FAISS scans instead of numpy
_CHUNK_ROWS = 1 << 20
_MC_BUDGET_BYTES = 64 << 20  # FAISS counting top-k holds (queries x (bits+1) x k) int64

Result = tuple[np.ndarray, np.ndarray]  # (distances int32, rows int64), (distance, row) order


def search(
    segments: list[Segment],
    blocked: list[np.ndarray],
    queries: np.ndarray,
    k: int | None,
    radius: int | None,
    allowed: list[np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per query (distances, segment numbers, rows) in (distance, keyframe id) order.

    ``queries``: (Q, 8W) uint8, padded like the segments' codes. ``allowed``: per segment,
    the sorted rows that may answer (a filter, e.g. one concept's keyframes), or None.
    """
    per_segment = [
        search_segment(seg, dead, queries, k, radius)
        if allowed is None
        else search_rows(seg, dead, allowed[s], queries, k, radius)
        for s, (seg, dead) in enumerate(zip(segments, blocked, strict=True))
    ]
    return merge(per_segment, segments, len(queries), k)


def search_rows(
    seg: Segment,
    blocked: np.ndarray,
    rows: np.ndarray,
    queries: np.ndarray,
    k: int | None,
    radius: int | None,
) -> list[Result]:
    """Exact answers among some rows of a segment (sorted): a scan of those rows only."""
    if len(blocked) and len(rows):
        rows = rows[~np.isin(seg.video[rows], blocked)]
    if not len(rows):
        return [(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in range(len(queries))]
    codes = np.asarray(seg.codes[rows])
    out = []
    for query in queries.view(np.uint64):
        d, r = _numpy_flat(codes, query, k, radius, None)
        out.append((d, rows[r]))
    return out


def search_segment(
    seg: Segment, blocked: np.ndarray, queries: np.ndarray, k: int | None, radius: int | None
) -> list[Result]:
    """Exact answers within one segment, by MIH where it pays, else flat."""
    results: list[Result | None] = [None] * len(queries)
    if seg.tables is not None and len(seg):
        budget = max(len(seg) // MIH_BUDGET_DIVISOR, 1)
        for start in range(0, len(queries), MIH_BATCH):
            chunk = queries[start : start + MIH_BATCH]
            answers, _ = mih.search(seg.tables, seg.video, chunk, k, radius, blocked, budget)
            results[start : start + len(chunk)] = answers
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        for i, answer in zip(todo, flat(seg, blocked, queries[todo], k, radius), strict=True):
            results[i] = answer
    return results  # type: ignore[return-value]


def flat(
    seg: Segment, blocked: np.ndarray, queries: np.ndarray, k: int | None, radius: int | None
) -> list[Result]:
    """A scan of every row: exact, (distance, row) order."""
    if not len(seg):
        return [(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in range(len(queries))]
    allowed = seg.live_mask(blocked)
    if k is not None and len(queries) * len(seg) >= FLAT_FAISS_MIN_WORK:
        return _faiss_flat(seg, queries, k, radius, allowed)
    q_words = queries.view(np.uint64)
    return [_numpy_flat(seg.codes, q, k, radius, allowed) for q in q_words]


def _numpy_flat(
    codes: np.ndarray, query: np.ndarray, k: int | None, radius: int | None, allowed
) -> Result:
    n, n_words = codes.shape
    worst = 64 * n_words + 1  # "excluded": farther than any real distance
    dist = np.empty(n, np.uint8 if worst < 256 else np.uint16)
    for start in range(0, n, _CHUNK_ROWS):
        block = np.bitwise_count(codes[start : start + _CHUNK_ROWS] ^ query)
        dist[start : start + len(block)] = block.sum(axis=1, dtype=dist.dtype)
    if allowed is not None:
        dist[~allowed] = worst
    limit = worst - 1 if radius is None else min(int(radius), worst - 1)
    if k is None:
        rows = np.flatnonzero(dist <= limit)
    else:
        cumulative = np.cumsum(np.bincount(dist, minlength=worst + 1))
        cut = min(int(np.searchsorted(cumulative, k)), limit)
        rows = np.flatnonzero(dist < cut)
        ties = np.flatnonzero(dist == cut)[: max(k - len(rows), 0)] if cut <= limit else []
        rows = np.concatenate([rows, ties]).astype(np.int64)
    rows = rows[np.argsort(dist[rows], kind="stable")]
    return dist[rows].astype(np.int32), rows.astype(np.int64)


def _faiss_flat(seg: Segment, queries: np.ndarray, k: int, radius: int | None, allowed):
    import faiss

    codes = np.ascontiguousarray(seg.arrays["codes"])  # read whole if not mapped
    n, width = codes.shape
    k_faiss = min(k, n)
    selector = bitmap = None
    if allowed is not None:
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
    batch = max(1, _MC_BUDGET_BYTES // ((width * 8 + 1) * k_faiss * 8))
    out = []
    for start in range(0, len(queries), batch):
        chunk = np.ascontiguousarray(queries[start : start + batch])
        dist = np.empty((len(chunk), k_faiss), np.int32)
        rows = np.empty((len(chunk), k_faiss), np.int64)
        faiss.hammings_knn_mc(
            faiss.swig_ptr(chunk),
            faiss.swig_ptr(codes),
            len(chunk),
            n,
            k_faiss,
            width,
            faiss.swig_ptr(dist),
            faiss.swig_ptr(rows),
            selector,
        )
        for d, r in zip(dist, rows, strict=True):
            keep = r >= 0
            if radius is not None:
                keep &= d <= radius
            d, r = d[keep], r[keep]
            order = np.lexsort((r, d))  # FAISS gives this order; the contract never rests on it
            out.append((d[order], r[order]))
    del selector, bitmap  # FAISS read the bitmap through a raw pointer: alive until here
    return out


def merge(
    per_segment: list[list[Result]], segments: list[Segment], n_queries: int, k: int | None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each query's answers from every segment, in (distance, keyframe id) order."""
    empty = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if not per_segment:
        return [empty] * n_queries
    if len(per_segment) == 1:
        return [(d, np.zeros(len(r), np.int64), r) for d, r in per_segment[0]]
    d_parts, r_parts, q_parts, s_parts, id_parts = [], [], [], [], []
    for s, answers in enumerate(per_segment):
        lengths = [len(r) for _, r in answers]
        if not sum(lengths):
            continue
        rows = np.concatenate([r for _, r in answers])
        d_parts.append(np.concatenate([d for d, _ in answers]))
        r_parts.append(rows)
        q_parts.append(np.repeat(np.arange(n_queries), lengths))
        s_parts.append(np.full(len(rows), s, np.int64))
        id_parts.append(segments[s].ids[rows])
    if not q_parts:
        return [empty] * n_queries
    q, d, s, r = (np.concatenate(p) for p in (q_parts, d_parts, s_parts, r_parts))
    width = max(a.dtype.itemsize for a in id_parts)
    ids = np.concatenate([a.astype(f"S{width}") for a in id_parts])
    order = np.lexsort((r, s, ids, d, q))
    q, d, s, r = q[order], d[order], s[order], r[order]
    bounds = np.searchsorted(q, np.arange(n_queries + 1))
    out = []
    for i in range(n_queries):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if k is not None:
            hi = min(hi, lo + k)
        out.append((d[lo:hi], s[lo:hi], r[lo:hi]))
    return out
