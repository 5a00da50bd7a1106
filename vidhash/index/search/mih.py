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

A row enters a query's candidates once, the first time it is found (its other substrings
tell whether an earlier round found it, so no set of seen rows is kept), and only while
it can still answer: not farther than the k-th nearest row found so far (:class:`_State`).
So the pool stays small and each round's check and the final sort are cheap.

Why not FAISS: ``IndexBinaryMultiHash`` probes a fixed number of bit flips and returns what
it finds, which is not the exact k-NN (it misses rows beyond its flips); ``IndexBinaryHash``
is the same with one table. Neither orders ties by row. This module is numpy only.

A query whose candidates would pass ``budget`` rows (uniform random codes, large radii,
filters that leave few rows), or whose next round would probe more than ``MAX_SHELL``
buckets, is handed back unanswered; the caller scans those flat. :func:`search` also
reports its :class:`Work` (candidates, buckets, rounds), which the engine's cost model
prices (:func:`vidhash.index.search.engine.plan`).
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
class Work:
    """What a :func:`search` call did: candidate rows whose distance it computed (repeats
    included), buckets it looked up (queries x masks) and rounds (one per table and radius
    probed, each a few numpy calls for the whole batch)."""

    candidates: int = 0
    buckets: int = 0
    rounds: int = 0


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
) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], Work]:
    """Per query (distances int32, rows int64) in (distance, row) order, or None for a
    query handed back for a flat scan; and the :class:`Work` it took.

    ``k``: the k best (all of them with ``k=None``) within ``radius`` (no limit with
    None). ``blocked``: video numbers whose rows never count (``video`` maps row -> video).
    """
    m = len(tables.spec)
    n_queries = len(queries_u8)
    state = _State(queries_u8, tables.spec, k, radius)
    active = np.arange(n_queries)
    seen = np.zeros(n_queries, np.int64)  # candidates looked at, repeats included
    handed_back = np.zeros(n_queries, bool)
    work = Work()
    for r in range(MAX_BITS + 1):
        for j, (_, bits) in enumerate(tables.spec):
            if len(active) == 0:
                break
            if r <= bits and comb(bits, r) > MAX_SHELL:  # too many buckets: scan flat
                handed_back[active] = True
                active = active[:0]
                break
            masks = shell(bits, r) if r <= bits else np.zeros(0, np.int64)
            keys = state.q_subs[active, j][:, None] ^ masks[None, :]
            work.buckets += keys.size
            work.rounds += 1
            lo = tables.starts[j][keys].astype(np.int64)
            counts = tables.starts[j][keys + 1] - lo
            per_query = counts.sum(axis=1)
            over = seen[active] + per_query > budget
            if over.any():  # cheaper to scan these flat than to keep probing
                handed_back[active[over]] = True
                keep = ~over
                active, lo, counts = active[keep], lo[keep], counts[keep]
                per_query = per_query[keep]
            seen[active] += per_query
            if int(per_query.sum()):
                at = _spans(lo.ravel(), counts.ravel())
                owner = np.repeat(np.repeat(active, len(masks)), counts.ravel())
                state.add(tables, j, r, at, owner, video, blocked)
            active = active[state.cap[active] > m * r + j]  # all rows within the cap seen
            if r >= bits:  # table j probed at every radius: every row has been seen
                active = active[:0]
        if len(active) == 0:
            break
    work.candidates = int(seen.sum())
    return state.collect(handed_back), work


def _spans(lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions lo[i] .. lo[i] + counts[i] - 1 of every span, concatenated."""
    ends = np.cumsum(counts)
    return np.repeat(lo - (ends - counts), counts) + np.arange(int(ends[-1]))


class _State:
    """A batch's candidates: each row once (when first found), only while it can answer.

    A row is found at round (r, j) when its substring j is at distance r from the query's,
    so the first time it is found is the least (substring distance, table) over its tables:
    a candidate is new unless an earlier table has it within r or a later one within r - 1.
    ``cap`` per query: the radius, and with k the distance of the k-th nearest row found so
    far; a row farther than that can never answer, and once every row within it has been
    seen (round bound m*r + j >= cap) the query is answered.
    """

    def __init__(self, queries_u8, spec, k: int | None, radius: int | None) -> None:
        self.q_words = queries_u8.view(np.uint64)
        self.q_subs = np.stack(substrings(queries_u8, spec), axis=1)  # (Q, m)
        self.k = k
        self.bits = 64 * self.q_words.shape[1]
        limit = self.bits if radius is None else min(int(radius), self.bits)
        self.cap = np.full(len(queries_u8), limit, np.int64)
        self.found = np.zeros((len(queries_u8), self.bits + 1), np.int64)  # rows by distance
        self.masks = [_word_mask(start, bits) for start, bits in spec]
        self.pool: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, tables: Tables, j: int, r: int, at, owner, video, blocked) -> None:
        """Score the candidates at ``at`` of table j (found at radius r) and keep the new
        ones that can still answer: first by distance (few pass it), then the repeats."""
        codes = tables.codes[j]
        if codes.shape[1] == 1:  # one word (codes of up to 64 bits): 1-d, no row sums
            x = codes.reshape(-1)[at] ^ self.q_words[:, 0][owner]
            dist = np.bitwise_count(x)
        else:
            x = codes[at] ^ self.q_words[owner]
            dist = np.bitwise_count(x).sum(axis=1, dtype=np.int64)
        pick = np.flatnonzero(dist <= self.cap[owner])
        x, at, owner, dist = x[pick], at[pick], owner[pick], dist[pick].astype(np.int64)
        keep = np.ones(len(pick), bool)
        for other, (word, mask) in enumerate(self.masks):
            if other != j:  # seen before in an earlier table within r, a later one within r-1
                sub = np.bitwise_count((x if x.ndim == 1 else x[:, word]) & mask)
                keep &= sub > r if other < j else sub >= r
        rows = tables.order[j][at[keep]].astype(np.int64)
        owner, dist = owner[keep], dist[keep]
        if blocked is not None and len(blocked):
            ok = ~np.isin(video[rows], blocked)
            owner, rows, dist = owner[ok], rows[ok], dist[ok]
        if not len(rows):
            return
        self.pool.append((owner, rows, dist))
        if self.k is not None:
            width = self.bits + 1
            self.found += np.bincount(owner * width + dist, minlength=self.found.size).reshape(
                self.found.shape
            )
            touched = np.unique(owner)
            reach = (np.cumsum(self.found[touched], axis=1) < self.k).sum(axis=1)
            self.cap[touched] = np.minimum(self.cap[touched], reach)

    def collect(self, handed_back: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """The answer per query: its k nearest rows within the cap, (distance, row) order.

        The pool holds each row once; rows tied at the cap can be many where codes repeat
        a lot, so past ``_SORT_ALL`` a query only sorts its k nearest (:func:`_nearest`).
        """
        n_queries, k = len(self.cap), self.k
        empty = np.zeros(0, np.int64)
        q, r, d = (
            (np.concatenate(p) for p in zip(*self.pool, strict=True))
            if self.pool
            else (empty, empty, empty)
        )
        keep = d <= self.cap[q]
        q, r, d = q[keep], r[keep], d[keep]
        if k is None or len(q) <= _SORT_ALL * n_queries:  # one sort for the whole batch
            order = np.lexsort((r, d, q))
            q, r, d = q[order], r[order], d[order]
            bounds = np.searchsorted(q, np.arange(n_queries + 1)).tolist()
            spans = [(bounds[i], bounds[i + 1]) for i in range(n_queries)]
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
            ri, di = _nearest(r[mine], d[mine], k)
            order = np.lexsort((ri, di))[:k]
            results.append((di[order].astype(np.int32), ri[order]))
        return results


def _word_mask(start: int, bits: int) -> tuple[int, np.uint64]:
    """(word, mask) selecting the substring at ``start`` in a code read as native uint64
    words (the stored bytes are big-endian: the mask is made as a value, then byte-swapped)."""
    value = ((1 << bits) - 1) << (64 - start % 64 - bits)
    return start // 64, np.frombuffer(value.to_bytes(8, "big"), np.uint64)[0]


def _nearest(rows: np.ndarray, dist: np.ndarray, k: int):
    """The entries that can be among the k best (distinct) rows: every entry nearer than
    the k-th nearest distance, and of those at that distance the k smallest rows."""
    if len(rows) <= k:
        return rows, dist
    cut = int(np.partition(dist, k - 1)[k - 1])
    near = dist < cut
    tied = np.flatnonzero(dist == cut)
    room = k - int(near.sum())
    if len(tied) > room:
        tied = tied[np.argpartition(rows[tied], room - 1)[:room]] if room > 0 else tied[:0]
    pick = np.concatenate([np.flatnonzero(near), tied])
    return rows[pick], dist[pick]
