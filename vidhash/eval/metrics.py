"""Retrieval metrics over packed binary codes: the single source of truth for vidhash.

Pure numpy, so the trainer, the concept evaluation and the hashing benchmark all score
with exactly the same code.

Definitions (written into every report):

* **Ranking.** Database items are ranked by Hamming distance to the query; ties are broken
  by the item's id (or its position when no ids are given), so every ranking, and hence
  every score, is deterministic. This is the order ``vidhash.index`` search returns.
* **AP@K** as in DLBHC [Lin et al. 2015]: ``AP@K = (1/R_K) * sum_{k<=K} P(k) * rel(k)``,
  where ``P(k)`` is the precision of the top ``k``, ``rel(k)`` is 1 when the ``k``-th item is
  relevant, and ``R_K`` is the number of relevant items *in the top K*; ``AP@K = 0`` when
  ``R_K = 0``. This is also the formula of the widely used HashNet/DPSH evaluation code
  for mAP@1000 / mAP@5000.
* **mAP@all** is the same formula with ``K`` = the whole database, so ``R_K`` becomes the
  number of relevant items in the database (the classic, non-truncated average precision).
* **MAP** is the mean of AP over queries.
* **precision@k** is the fraction of relevant items in the top ``k``, averaged over queries.
* **Precision-recall by Hamming radius**: for each radius ``r``, the items with distance
  ``<= r`` are retrieved; precision = relevant retrieved / retrieved (averaged over the
  queries that retrieve at least one item), recall = relevant retrieved / relevant in the
  database (averaged over queries that have at least one relevant item).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

# Queries per block: bounds memory at block x database x ~8 bytes (256 x 59,000 -> 120 MB);
# smaller blocks for bigger databases keep the working set near 160 MB.
QUERY_BLOCK = 256
_BLOCK_CELLS = 20_000_000


def query_block(n_database: int) -> int:
    """Queries per block for a database of ``n_database`` items."""
    return max(1, min(QUERY_BLOCK, _BLOCK_CELLS // max(n_database, 1)))


def unpack_codes(codes: np.ndarray, code_bits: int | None = None) -> np.ndarray:
    """Packed uint8 codes (N, ceil(L/8)) -> bits (N, L) uint8 in np.packbits order."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D (N, nbytes) uint8 array, got shape {codes.shape}")
    bits = np.unpackbits(codes, axis=1)
    if code_bits is not None:
        if code_bits > bits.shape[1]:
            raise ValueError(f"code_bits={code_bits} exceeds {bits.shape[1]} stored bits")
        bits = bits[:, :code_bits]
    return bits


def _signs(codes: np.ndarray, code_bits: int | None) -> np.ndarray:
    """Bits as float32 +-1, so a matrix product gives L - 2 * Hamming distance exactly."""
    return unpack_codes(codes, code_bits).astype(np.float32) * 2.0 - 1.0


def hamming_distance_matrix(
    query_codes: np.ndarray, db_codes: np.ndarray, code_bits: int | None = None
) -> np.ndarray:
    """Hamming distances (Q, N) int32 between packed codes.

    Computed as ``(L - A @ B.T) / 2`` with +-1 vectors: a BLAS product, exact for any
    realistic code length (float32 holds integers up to 2**24 exactly).
    """
    if query_codes.shape[1] != db_codes.shape[1]:
        raise ValueError(
            f"code widths differ: queries {query_codes.shape[1]} bytes, "
            f"database {db_codes.shape[1]} bytes"
        )
    q = _signs(query_codes, code_bits)
    d = _signs(db_codes, code_bits)
    length = q.shape[1]
    return np.rint((length - q @ d.T) / 2.0).astype(np.int32)


def tie_break_ranks(db_ids: np.ndarray | list | None, n: int) -> np.ndarray:
    """Rank of each database item's id (0..n-1): the secondary sort key after distance."""
    if db_ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(db_ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} database items")
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(ids, kind="stable")] = np.arange(n)
    return ranks


def rank_by_distance(
    distances: np.ndarray,
    tie_ranks: np.ndarray,
    k: int | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k database indices per query, ordered by (distance, tie rank).

    ``exclude`` is a boolean (Q, N) mask of items a query must not retrieve (itself, its own
    video); they are pushed past every real item and dropped. Returns (indices, valid) where
    ``valid`` is False in slots that had to be filled with excluded items (only when fewer
    than ``k`` candidates remain).
    """
    nq, n = distances.shape
    k = n if k is None else min(k, n)
    # One int64 key: distance major, id rank minor -> a single sort gives the exact order.
    key = distances.astype(np.int64) * n + tie_ranks[None, :]
    if exclude is not None:
        key = np.where(exclude, np.iinfo(np.int64).max, key)
    if k < n:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(part, np.argsort(np.take_along_axis(key, part, 1), 1), 1)
    else:
        order = np.argsort(key, axis=1, kind="stable")
    valid = np.ones_like(order, dtype=bool)
    if exclude is not None:
        valid = ~np.take_along_axis(exclude, order, 1)
    return order, valid


def average_precision_at_k(relevance: np.ndarray | list, k: int | None = None) -> float:
    """AP@K (DLBHC) of one ranked list of 0/1 relevance; 0 when nothing relevant in the top K.

    ``relevance`` is in rank order; ``k=None`` uses the whole list (AP@all).
    """
    rel = np.asarray(relevance, dtype=bool)
    if rel.ndim != 1:
        raise ValueError("relevance must be 1-D (one ranked list)")
    if k is not None:
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        rel = rel[:k]
    return float(average_precision_batch(rel[None, :])[0])


def average_precision_batch(relevance: np.ndarray) -> np.ndarray:
    """AP over the full width of each row of a (Q, K) 0/1 relevance matrix (R_K normalisation)."""
    rel = np.asarray(relevance, dtype=bool)
    if rel.shape[1] == 0:
        return np.zeros(rel.shape[0])
    hits = np.cumsum(rel, axis=1, dtype=np.int64)
    ranks = np.arange(1, rel.shape[1] + 1)
    precision_sum = np.sum((hits / ranks) * rel, axis=1)
    n_rel = hits[:, -1]
    return np.divide(precision_sum, n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)


def relevance_matrix(query_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """(Q, N) bool: relevant when the labels match (1-D class ids) or share any label (2-D)."""
    q = np.asarray(query_labels)
    d = np.asarray(db_labels)
    if q.ndim == 1 and d.ndim == 1:
        return q[:, None] == d[None, :]
    if q.ndim == 2 and d.ndim == 2:
        return (q.astype(np.float32) @ d.astype(np.float32).T) > 0
    raise ValueError("query and database labels must both be 1-D class ids or both 2-D multi-hot")


@dataclass
class RetrievalScores:
    """Everything the hashing benchmark reports, computed in one pass over the distances."""

    map_at: dict[str, float]  # "1000" -> mAP@1000, "all" -> mAP@all
    precision_at_k: np.ndarray  # (max_k,): mean precision at k = 1..max_k
    pr_radius: np.ndarray  # (L+1,) Hamming radii
    pr_precision: np.ndarray  # (L+1,)
    pr_recall: np.ndarray  # (L+1,)
    n_queries: int
    n_database: int
    code_bits: int
    per_query_ap: dict[str, np.ndarray] = field(default_factory=dict)


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def evaluate_retrieval(
    query_codes: np.ndarray,
    query_labels: np.ndarray,
    db_codes: np.ndarray,
    db_labels: np.ndarray,
    code_bits: int | None = None,
    topks: tuple[int | None, ...] = (1000, None),
    max_k: int = 1000,
    db_ids: np.ndarray | list | None = None,
) -> RetrievalScores:
    """mAP at each K in ``topks`` (None = all), precision@1..max_k and the PR-by-radius curve.

    Works in blocks of queries so 1,000 x 59,000 fits in a few hundred MB.
    """
    nq, n = len(query_codes), len(db_codes)
    length = code_bits if code_bits is not None else query_codes.shape[1] * 8
    tie = tie_break_ranks(db_ids, n)
    max_k = min(max_k, n)
    ap: dict[str, list[np.ndarray]] = {_k_name(k): [] for k in topks}
    prec_sum = np.zeros(max_k)
    pr_tp = np.zeros((nq, length + 1))
    pr_ret = np.zeros((nq, length + 1))
    n_rel_total = np.zeros(nq)
    for block in _blocks(nq, query_block(n)):
        dist = hamming_distance_matrix(query_codes[block], db_codes, code_bits)
        rel = relevance_matrix(query_labels[block], db_labels)
        order, _ = rank_by_distance(dist, tie, None)
        ranked_rel = np.take_along_axis(rel, order, 1)
        for k in topks:
            ap[_k_name(k)].append(average_precision_batch(ranked_rel[:, : (k or n)]))
        prec_sum += (np.cumsum(ranked_rel[:, :max_k], 1) / np.arange(1, max_k + 1)).sum(0)
        # Histograms of distances (all items / relevant items) -> cumulative counts per radius.
        rows = np.arange(dist.shape[0])[:, None] * (length + 1)
        flat = (rows + dist).ravel()
        size = dist.shape[0] * (length + 1)
        ret_hist = np.bincount(flat, minlength=size).reshape(-1, length + 1)
        tp_hist = np.bincount(flat, weights=rel.ravel(), minlength=size).reshape(-1, length + 1)
        pr_ret[block] = np.cumsum(ret_hist, 1)
        pr_tp[block] = np.cumsum(tp_hist, 1)
        n_rel_total[block] = rel.sum(1)
    per_query = {name: np.concatenate(vals) for name, vals in ap.items()}
    pr_precision, pr_recall = _pr_means(pr_tp, pr_ret, n_rel_total)
    return RetrievalScores(
        map_at={name: float(v.mean()) if len(v) else 0.0 for name, v in per_query.items()},
        precision_at_k=prec_sum / max(nq, 1),
        pr_radius=np.arange(length + 1),
        pr_precision=pr_precision,
        pr_recall=pr_recall,
        n_queries=nq,
        n_database=n,
        code_bits=length,
        per_query_ap=per_query,
    )


def _pr_means(
    tp: np.ndarray, retrieved: np.ndarray, n_relevant: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-radius means over the queries where the ratio is defined (NaN where none is)."""
    return _masked_mean(tp, retrieved), _masked_mean(
        tp, np.broadcast_to(n_relevant[:, None], tp.shape)
    )


def _masked_mean(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    defined = denominator > 0
    ratio = np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=defined)
    count = defined.sum(0)
    return np.divide(ratio.sum(0), count, out=np.full(count.shape, np.nan), where=count > 0)


def _k_name(k: int | None) -> str:
    return "all" if k is None else str(k)


def mean_average_precision(
    query_codes: np.ndarray,
    query_labels: np.ndarray,
    db_codes: np.ndarray,
    db_labels: np.ndarray,
    topk: int | None = None,
    code_bits: int | None = None,
    db_ids: np.ndarray | list | None = None,
) -> float:
    """MAP@topk (DLBHC R_K normalisation); ``topk=None`` is mAP@all (R = all relevant)."""
    nq, n = len(query_codes), len(db_codes)
    tie = tie_break_ranks(db_ids, n)
    aps = []
    for block in _blocks(nq, query_block(n)):
        dist = hamming_distance_matrix(query_codes[block], db_codes, code_bits)
        rel = relevance_matrix(query_labels[block], db_labels)
        order, _ = rank_by_distance(dist, tie, topk)
        aps.append(average_precision_batch(np.take_along_axis(rel, order, 1)))
    return float(np.concatenate(aps).mean()) if nq else 0.0


def precision_at_k(
    query_codes: np.ndarray,
    query_labels: np.ndarray,
    db_codes: np.ndarray,
    db_labels: np.ndarray,
    max_k: int = 1000,
    code_bits: int | None = None,
    db_ids: np.ndarray | list | None = None,
) -> np.ndarray:
    """Mean precision at k = 1..max_k (index k-1)."""
    scores = evaluate_retrieval(
        query_codes, query_labels, db_codes, db_labels, code_bits, (), max_k, db_ids
    )
    return scores.precision_at_k


def precision_recall_by_radius(
    query_codes: np.ndarray,
    query_labels: np.ndarray,
    db_codes: np.ndarray,
    db_labels: np.ndarray,
    code_bits: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radii, precision, recall) for Hamming radius 0..L (see module docstring)."""
    scores = evaluate_retrieval(query_codes, query_labels, db_codes, db_labels, code_bits, (), 1)
    return scores.pr_radius, scores.pr_precision, scores.pr_recall
