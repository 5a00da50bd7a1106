"""Exact Hamming top-k and radius search over the segments of a search file.

Contract: for every query the answer is exactly the flat scan's over the live rows, in
(distance, keyframe id) order: same rows, same distances, same tie order.

* Per segment, rows are in keyframe id order, so (distance, row) is (distance, id) there.
  Each segment is answered by multi-index hashing (MIH, :mod:`vidhash.index.search.mih`) or by a
  flat scan of every row, whichever :func:`plan` predicts cheaper; both are exact, so the
  choice changes only the time taken, never an answer.
* Flat scans: numpy for small work (no FAISS import for one query in a CLI), FAISS's
  counting top-k over the memory-mapped codes for large batches (ties come out in row
  order, as in :class:`vidhash.index.search.flat.HammingSearcher`).
* The segments' answers are merged by (distance, keyframe id), comparing the ids' bytes.

The cost model (:func:`plan`), in nanoseconds of one thread per query:

* flat = rows x ``FLAT_ROW_NS`` (FAISS) or ``NUMPY_ROW_NS`` (numpy: small work before
  FAISS is imported, and radius-only queries): the same for every query, known from the
  segment size.
* MIH = candidates x ``MIH_CANDIDATE_NS`` + buckets x ``MIH_BUCKET_NS`` + rounds x
  ``MIH_ROUND_NS / MIH_BATCH`` (:class:`vidhash.index.search.mih.Work`): it depends on how the
  codes cluster around the query, so it is measured by a probe: MIH for ``PROBE_ROWS``
  rows of the segment spread over it (each asking for k + 1: itself and k others), once
  per segment and (k, radius, budget) in a process, cached on the segment. A probe costs
  at most about ``PROBE_ROWS`` flat scans of the segment, so a batch of fewer than
  ``PROBE_MIN_QUERIES`` queries does not pay for one: it reuses a cached probe, or else
  tries MIH with the budget.
* MIH is chosen when its probed cost is below the flat one (uniform random codes: flat;
  clustered codes: MIH). Under MIH each query still carries a budget, the candidates
  that cost as much as a flat scan: a query that would pass it (far from every cluster,
  large radii) is handed back and scanned flat, so no query costs more than about two
  flat scans.

The constants were fitted (relative least squares) to timings of ``mih.search`` batches
and flat scans on uniform, clustered and loosely clustered 48-bit codes of 100k and 1M
rows (k = 10 and 100, radius 6), one thread, on a shared 2-core VM (median error 15%):
only their ratios matter, and near the break-even either engine costs about the same.
With them, uniform codes are scanned flat in segments of up to about 500k rows and
answered by MIH in larger ones (1M rows: MIH ~0.4 ms, flat ~1 ms a query); clustered
codes take MIH at every size that has tables.

``blocked`` holds, per segment, the video numbers whose rows never count: inputs dropped
or redone since the segment was written, and the inputs a query excludes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from vidhash.index.search import mih
from vidhash.index.search.segment import Segment

MIH_BATCH = 64
FLAT_FAISS_MIN_WORK = 4_000_000  # queries x rows from which FAISS scans instead of numpy
FLAT_FAISS_LOADED_MIN_WORK = 100_000  # the same once FAISS is imported anyway
FLAT_ROW_NS = 1.1  # FAISS counting top-k, per row and query
NUMPY_ROW_NS = 6.0  # numpy xor + popcount + selection, per row and query
MIH_CANDIDATE_NS = 20.0  # gather, distance, first-seen test: per candidate row
MIH_BUCKET_NS = 25.0  # one bucket looked up (a query x a mask)
MIH_ROUND_NS = 150_000.0  # one round (a table at a radius) for a batch of MIH_BATCH queries
PROBE_ROWS = 16
PROBE_MIN_QUERIES = 16
_CHUNK_ROWS = 1 << 20
_MC_BUDGET_BYTES = 64 << 20  # FAISS counting top-k holds (queries x (bits+1) x k) int64

Result = tuple[np.ndarray, np.ndarray]  # (distances int32, rows int64), (distance, row) order


@dataclass(frozen=True)
class Plan:
    """How one segment answers a batch, and why: predicted ns per query of each engine."""

    engine: str  # "mih" or "flat"
    mih_ns: float  # nan: not probed (no tables, or a small batch without a cached probe)
    flat_ns: float
    budget: int  # MIH candidates per query past which that query is scanned flat instead


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
    seg: Segment,
    blocked: np.ndarray,
    queries: np.ndarray,
    k: int | None,
    radius: int | None,
    use: str | None = None,
) -> list[Result]:
    """Exact answers within one segment, by the engine :func:`plan` picks (``use``: "mih"
    or "flat" to force one, e.g. to compare them; forced MIH has no budget)."""
    budget = 1 << 62
    if use is None:
        chosen = plan(seg, k, radius, len(queries))
        use, budget = chosen.engine, chosen.budget
    results: list[Result | None] = [None] * len(queries)
    if use == "mih" and seg.tables is not None and len(seg):
        for start in range(0, len(queries), MIH_BATCH):
            chunk = queries[start : start + MIH_BATCH]
            answers, _ = mih.search(seg.tables, seg.video, chunk, k, radius, blocked, budget)
            results[start : start + len(chunk)] = answers
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        for i, answer in zip(todo, flat(seg, blocked, queries[todo], k, radius), strict=True):
            results[i] = answer
    return results  # type: ignore[return-value]


def plan(seg: Segment, k: int | None, radius: int | None, n_queries: int) -> Plan:
    """MIH or flat for a batch of ``n_queries`` on this segment, by predicted cost (the
    module docstring's model): cheap, from the segment size and a cached probe."""
    flat_ns = len(seg) * (FLAT_ROW_NS if _faiss_scans(k, n_queries, len(seg)) else NUMPY_ROW_NS)
    if seg.tables is None or not len(seg):
        return Plan("flat", float("nan"), flat_ns, 0)
    budget = max(1, int(flat_ns / MIH_CANDIDATE_NS))
    key = (k, radius, budget)
    if key not in seg.probes and n_queries < PROBE_MIN_QUERIES:
        return Plan("mih", float("nan"), flat_ns, budget)
    if key not in seg.probes:
        seg.probes[key] = probe(seg, k, radius, budget, flat_ns)
    mih_ns = seg.probes[key]
    return Plan("mih" if mih_ns < flat_ns else "flat", mih_ns, flat_ns, budget)


def probe(seg: Segment, k: int | None, radius: int | None, budget: int, flat_ns: float) -> float:
    """Predicted MIH ns per query: MIH for ``PROBE_ROWS`` rows spread over the segment, its
    work priced by the model; a row handed back costs its work plus a flat scan. A row
    asks for k + 1 (itself and k others): the price of a query like the data, not of one
    that stops at itself."""
    rows = np.unique(np.linspace(0, len(seg) - 1, PROBE_ROWS).astype(np.int64))
    sample = np.asarray(seg.arrays["codes"][rows])
    wanted = None if k is None else k + 1
    answers, work = mih.search(seg.tables, seg.video, sample, wanted, radius, None, budget)
    spent = work.candidates * MIH_CANDIDATE_NS + work.buckets * MIH_BUCKET_NS
    spent += work.rounds * MIH_ROUND_NS * len(rows) / MIH_BATCH
    spent += sum(a is None for a in answers) * flat_ns
    return spent / len(rows)


def flat(
    seg: Segment, blocked: np.ndarray, queries: np.ndarray, k: int | None, radius: int | None
) -> list[Result]:
    """A scan of every row: exact, (distance, row) order."""
    if not len(seg):
        return [(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in range(len(queries))]
    allowed = seg.live_mask(blocked)
    if _faiss_scans(k, len(queries), len(seg)):
        return _faiss_flat(seg, queries, k, radius, allowed)
    q_words = queries.view(np.uint64)
    return [_numpy_flat(seg.codes, q, k, radius, allowed) for q in q_words]


def _faiss_scans(k: int | None, n_queries: int, rows: int) -> bool:
    """FAISS for top-k work that pays for importing it (a few hundred ms), or for small
    work once something imported it; numpy otherwise (and for radius-only queries)."""
    work = n_queries * rows
    loaded = "faiss" in sys.modules
    return k is not None and work >= (FLAT_FAISS_LOADED_MIN_WORK if loaded else FLAT_FAISS_MIN_WORK)


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
        valid = rows >= 0
        if radius is not None:
            valid &= dist <= radius
        # FAISS gives (distance, row) order; the contract never rests on it: sort anyway.
        dist = np.where(valid, dist, np.iinfo(np.int32).max)
        order = np.lexsort((rows, dist), axis=-1)
        dist, rows = np.take_along_axis(dist, order, -1), np.take_along_axis(rows, order, -1)
        counts = valid.sum(axis=1).tolist()
        out += [(dist[i, :c], rows[i, :c]) for i, c in enumerate(counts)]
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
