"""Exact k-nearest-neighbour and radius search in Hamming space by multi-index hashing.

Norouzi, Punjani & Fleet, "Fast Exact Search in Hamming Space with Multi-Index Hashing"
(CVPR 2012 / TPAMI 2014). A code of L bits is cut into m disjoint substrings of at most s
bits, never across a 64-bit word, s about log2(rows) as the paper advises (16, or 24 from
4M rows: 48 bits -> 3 x 16 or 2 x 24). Table j lists every row by the
value of its substring j: ``order`` (rows sorted by that value, stable, so by row number
within a bucket), ``starts`` (where each of the 2^s buckets begins) and ``codes`` (the rows'
codes in that order, so the candidates of one bucket are read from one stretch of memory).

Search probes, for r = 0, 1, 2, ... and table j = 0..m-1, every bucket whose substring is
at distance exactly r from the query's. After table j at radius r every row at distance
<= B = m*r + j from the query has been seen (a row not seen differs by > r in tables 0..j
and by > r-1 in the others: at least m*r + j + 1 bits). So once k distinct rows at
distance <= B are known, the k best by (distance, row) are among them, ties included: the
answer is exactly the flat scan's. A radius query stops once B >= radius.

Why not FAISS: ``IndexBinaryMultiHash`` probes a fixed number of bit flips and returns what
it finds, which is not the exact k-NN (it misses rows beyond its flips); ``IndexBinaryHash``
is the same with one table. Neither orders ties by row. This module is numpy only.

A query whose candidates would pass ``budget`` rows (uniform random codes, large radii,
filters that leave few rows), or whose next round would probe more than ``MAX_SHELL``
buckets, is handed back unanswered; the caller scans those flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

MAX_BITS = 24
MAX_SHELL = 50_000  # masks per probe round; a query needing more is scanned flat
_SORT_ALL = 2_000  # candidates per query up to which a batch's answers come from one sort


def substring_bits(rows: int) -> int:
    """The longest substring for a table of ``rows`` rows: about log2(rows) (Norouzi et al.
    choose m = L / log2(n)), so buckets hold a few rows each, between 16 and 24 bits."""
    return 24 if rows >= 4_000_000 else 16


def chunks(code_bits: int, max_bits: int = 16) -> list[tuple[int, int]]:
    """(first bit, bits) of each substring: per 64-bit word, pieces of at most max_bits."""
    out = []
    for word_start in range(0, code_bits, 64):
        used = min(64, code_bits - word_start)
        count = -(-used // max_bits)
        start = word_start
        for i in range(count):
            bits = used // count + (1 if i < used % count else 0)
            out.append((start, bits))
            start += bits
    return out


def substrings(codes_u8: np.ndarray, spec: list[tuple[int, int]]) -> list[np.ndarray]:
    """Each substring of each packed code (bits read big-endian, as stored), as int64."""
    out = []
    for start, bits in spec:
        word = start // 64
        big = codes_u8[:, 8 * word : 8 * word + 8].copy().view(">u8")[:, 0]
        shift = 64 - (start % 64) - bits
        out.append(((big >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64))
    return out


@lru_cache(maxsize=256)
def shell(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with exactly ``radius`` bits set (int64)."""
    masks = [sum(1 << b for b in chosen) for chosen in combinations(range(bits), radius)]
    return np.array(masks, dtype=np.int64)


def build_tables(
    codes_u8: np.ndarray, code_bits: int, max_bits: int | None = None
) -> dict[str, np.ndarray]:
    """The arrays of the m tables for these codes: ``mih_spec`` and ``mih{j}_order/_starts/
    _codes``; substrings of at most ``max_bits`` (default: :func:`substring_bits`)."""
    spec = chunks(code_bits, max_bits or substring_bits(len(codes_u8)))
    out = {"mih_spec": np.array(spec, np.int64).reshape(len(spec), 2)}
    for j, (values, (_, bits)) in enumerate(zip(substrings(codes_u8, spec), spec, strict=True)):
        order = np.argsort(values, kind="stable").astype(np.int32)
        starts = np.zeros((1 << bits) + 1, np.int32 if len(order) < 2**31 else np.int64)
        np.cumsum(np.bincount(values, minlength=1 << bits), out=starts[1:])
        out[f"mih{j}_order"] = order
        out[f"mih{j}_starts"] = starts
        out[f"mih{j}_codes"] = codes_u8[order]
    return out


@dataclass
class Tables:
    """The m tables of one segment (views into its file)."""

    spec: list[tuple[int, int]]
    order: list[np.ndarray]
    starts: list[np.ndarray]
    codes: list[np.ndarray]  # (n, W) uint64, row order of ``order``

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Tables | None:
        if "mih_spec" not in arrays:
            return None
        spec = [(int(a), int(b)) for a, b in np.asarray(arrays["mih_spec"]).tolist()]
        return cls(
            spec,
            [arrays[f"mih{j}_order"] for j in range(len(spec))],
            [arrays[f"mih{j}_starts"] for j in range(len(spec))],
            [arrays[f"mih{j}_codes"].view(np.uint64) for j in range(len(spec))],
        )


def search(
    tables: Tables,
    video: np.ndarray,
    queries_u8: np.ndarray,
    k: int | None,
    radius: int | None,
    blocked: np.ndarray | None,
    budget: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], int]:
    """Per query (distances int32, rows int64) in (distance, row) order, or None for a
    query handed back for a flat scan; and how many candidate rows were looked at.

    ``k``: the k best (all of them with ``k=None``) within ``radius`` (no limit with
    None). ``blocked``: video numbers whose rows never count (``video`` maps row -> video).
    """
    m = len(tables.spec)
    n_queries = len(queries_u8)
    q_words = queries_u8.view(np.uint64)
    q_subs = np.stack(substrings(queries_u8, tables.spec), axis=1)  # (Q, m)
    limit = np.iinfo(np.int64).max if radius is None else int(radius)
    active = np.arange(n_queries)
    seen = np.zeros(n_queries, np.int64)  # candidates looked at, repeats included
    handed_back = np.zeros(n_queries, bool)
    pool_q: list[np.ndarray] = []
    pool_r: list[np.ndarray] = []
    pool_d: list[np.ndarray] = []
    for r in range(MAX_BITS + 1):
        for j, (_, bits) in enumerate(tables.spec):
            if len(active) == 0:
                break
            if r <= bits and comb(bits, r) > MAX_SHELL:  # too many buckets: scan flat
                handed_back[active] = True
                active = active[:0]
                break
            masks = shell(bits, r) if r <= bits else np.zeros(0, np.int64)
            keys = q_subs[active, j][:, None] ^ masks[None, :]
            lo = tables.starts[j][keys].astype(np.int64)
            counts = tables.starts[j][keys + 1] - lo
            per_query = counts.sum(axis=1)
            over = seen[active] + per_query > budget
            if over.any():  # cheaper to scan these flat than to keep probing
                handed_back[active[over]] = True
                active, lo, counts, per_query = (
                    active[~over],
                    lo[~over],
                    counts[~over],
                    per_query[~over],
                )
            seen[active] += per_query
            total = int(per_query.sum())
            if total:
                counts = counts.ravel()
                ends = np.cumsum(counts)
                at = np.repeat(lo.ravel() - (ends - counts), counts) + np.arange(total)
                owner = np.repeat(np.repeat(active, len(masks)), counts)
                rows = tables.order[j][at].astype(np.int64)
                dist = np.bitwise_count(tables.codes[j][at] ^ q_words[owner])
                dist = dist.sum(axis=1, dtype=np.int64)
                if blocked is not None and len(blocked):
                    ok = ~np.isin(video[rows], blocked)
                    owner, rows, dist = owner[ok], rows[ok], dist[ok]
                pool_q.append(owner)
                pool_r.append(rows)
                pool_d.append(dist)
            active = active[~_finished(active, pool_q, pool_r, pool_d, k, m * r + j, limit, m)]
            if r >= bits:  # table j probed at every radius: every row has been seen
                active = active[:0]
        if len(active) == 0:
            break
    looked = int(seen.sum())
    return _collect(pool_q, pool_r, pool_d, n_queries, k, limit, handed_back, m), looked


def _finished(active, pool_q, pool_r, pool_d, k, bound, limit, m) -> np.ndarray:
    """Which active queries are answered once every row within ``bound`` has been seen."""
    if bound >= limit:
        return np.ones(len(active), bool)
    if k is None or not pool_q or not len(active):
        return np.zeros(len(active), bool)
    if len(pool_q) > 1:  # merge the pool in place, so the next check starts from one array
        pool_q[:] = [np.concatenate(pool_q)]
        pool_r[:] = [np.concatenate(pool_r)]
        pool_d[:] = [np.concatenate(pool_d)]
    within = pool_d[0] <= bound
    size = int(active.max()) + 1
    seen = np.bincount(pool_q[0][within], minlength=size)[active]  # a row at most m times
    done = seen >= m * k
    unsure = (seen >= k) & ~done
    if unsure.any():  # count distinct rows only where repeats could matter
        ask = np.isin(pool_q[0], active[unsure]) & within
        distinct = np.unique((pool_q[0][ask] << 32) | pool_r[0][ask])
        done |= np.bincount(distinct >> 32, minlength=size)[active] >= k
    return done


def _collect(pool_q, pool_r, pool_d, n_queries, k, limit, handed_back, m):
    """The answer per query from the candidate pool: distinct rows, (distance, row) order.

    With k, only a query's k * m nearest entries (a row appears at most once per table)
    and the rows tied with the farthest of them are sorted: all of a query's candidates
    can be hundreds of thousands where codes repeat a lot.
    """
    q = np.concatenate(pool_q) if pool_q else np.zeros(0, np.int64)
    r = np.concatenate(pool_r) if pool_r else np.zeros(0, np.int64)
    d = np.concatenate(pool_d) if pool_d else np.zeros(0, np.int64)
    keep = d <= limit
    q, r, d = q[keep], r[keep], d[keep]
    if k is None or len(q) <= _SORT_ALL * n_queries:  # one sort for the whole batch
        order = np.lexsort((r, d, q))
        q, r, d = q[order], r[order], d[order]
        distinct = np.ones(len(q), bool)
        distinct[1:] = (q[1:] != q[:-1]) | (r[1:] != r[:-1])  # repeats of a row are adjacent
        q, r, d = q[distinct], r[distinct], d[distinct]
        bounds = np.searchsorted(q, np.arange(n_queries + 1))
        spans = [(int(bounds[i]), int(bounds[i + 1])) for i in range(n_queries)]
        if k is not None:
            spans = [(lo, min(hi, lo + k)) for lo, hi in spans]
        return [
            None if handed_back[i] else (d[lo:hi].astype(np.int32), r[lo:hi])
            for i, (lo, hi) in enumerate(spans)
        ]
    results: list[tuple[np.ndarray, np.ndarray] | None] = []
    by_query = np.argsort(q, kind="stable")
    bounds = np.searchsorted(q[by_query], np.arange(n_queries + 1))
    for i in range(n_queries):
        if handed_back[i]:
            results.append(None)
            continue
        mine = by_query[bounds[i] : bounds[i + 1]]
        ri, di = _nearest(r[mine], d[mine], k, m)
        order = np.lexsort((ri, di))
        ri, di = ri[order], di[order]
        distinct = np.ones(len(ri), bool)
        distinct[1:] = ri[1:] != ri[:-1]  # a row has one distance: repeats are adjacent
        results.append((di[distinct][:k].astype(np.int32), ri[distinct][:k]))
    return results


def _nearest(rows: np.ndarray, dist: np.ndarray, k: int, tables: int):
    """The entries that can be among the k best distinct rows: every entry nearer than the
    distance where k * tables entries are reached, and of those at that distance the
    k * tables smallest rows (repeats of a row share its distance)."""
    need = k * tables
    if len(rows) <= need:
        return rows, dist
    cut = int(np.partition(dist, need - 1)[need - 1])
    near = dist < cut
    tied = np.flatnonzero(dist == cut)
    room = need - int(near.sum())
    if len(tied) > room:
        tied = tied[np.argpartition(rows[tied], room - 1)[:room]] if room > 0 else tied[:0]
    pick = np.concatenate([np.flatnonzero(near), tied])
    return rows[pick], dist[pick]
