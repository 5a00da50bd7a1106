"""Hamming distance, ranking, AP@K and mAP over packed binary codes: the one implementation.

Pure numpy at the bottom of the layers, so the index (``vidhash.index.store.codes.hamming``),
training reports (``train-hash``), the hashing protocols (``benchmark-hashing``) and the
concept evaluation (``vidhash evaluate``) all score with exactly this code, and give the
same number on the same codes.

**The tie rule.** Items at equal Hamming distance are ranked in the database's own order.
Each caller sets that order by sorting its database by a stable key before ranking: the
keyframe id for an index (evaluation reads keyframes sorted by id, the order ``vidhash
search`` returns), the relative file path (:func:`path_key`) for an image folder
(``benchmark-hashing`` and ``train-hash`` alike). Passing ``db_ids`` to the functions
below is the same as sorting the database by them first (a stable sort).

Definitions (written into every report):

* **Ranking.** Database items are ranked by Hamming distance to the query; ties go to the
  item first in the database's order, set by a stable key: keyframe id in an index,
  relative file path in a data set. Every ranking, and hence every score, is deterministic.
* **AP@K** as in DLBHC [Lin et al. 2015]: ``AP@K = (1/R_K) * sum_{k<=K} P(k) * rel(k)``,
  where ``P(k)`` is the precision of the top ``k``, ``rel(k)`` is 1 when the ``k``-th item is
  relevant, and ``R_K`` is the number of relevant items *in the top K*; ``AP@K = 0`` when
  ``R_K = 0``. This is also the formula of the widely used HashNet/DPSH evaluation code
  for mAP@1000 / mAP@5000.
* **mAP@all** is the same formula with ``K`` = the whole database, so ``R_K`` becomes the
  number of relevant items in the database (the classic, non-truncated average precision).
* **MAP** is the mean of AP over queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# Queries per block: bounds the (block x database) work arrays near 20M cells (~80 MB of
# int32 distances; 256 x 59,000 for CIFAR-10's 1k / 59k protocol needs 60 MB).
QUERY_BLOCK = 256
_BLOCK_CELLS = 20_000_000


def query_block(n_database: int) -> int:
    """Queries per block for a database of ``n_database`` items."""
    return max(1, min(QUERY_BLOCK, _BLOCK_CELLS // max(n_database, 1)))


def blocks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def hamming(a: np.ndarray, b: np.ndarray, code_bits: int | None = None) -> np.ndarray:
    """Hamming distances (int32) between packed uint8 codes, broadcasting like ``a ^ b``.

    ``hamming(q, db)`` with q (nbytes,) and db (N, nbytes) gives N distances; with
    ``q[:, None]`` (Q, 1, nbytes) a (Q, N) matrix. ``code_bits`` counts only the first L
    bits (codes stored unpadded have zero padding bits, which count nothing anyway).
    Popcount per byte (``np.bitwise_count``), accumulated byte by byte so a matrix needs
    no (Q, N, nbytes) temporary.
    """
    a = np.asarray(a, dtype=np.uint8)
    b = np.asarray(b, dtype=np.uint8)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"code widths differ: {a.shape[-1]} and {b.shape[-1]} bytes")
    nbytes = a.shape[-1]
    if code_bits is not None:
        if not 0 < code_bits <= 8 * nbytes:
            raise ValueError(f"code_bits={code_bits} does not fit {nbytes}-byte codes")
        nbytes = (code_bits + 7) // 8
    out = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=np.int32)
    for j in range(nbytes):
        diff = a[..., j] ^ b[..., j]
        if code_bits is not None and j == nbytes - 1 and code_bits % 8:
            diff &= np.uint8((0xFF << (8 - code_bits % 8)) & 0xFF)  # big-endian: high bits
        out += np.bitwise_count(diff)
    return out


def path_key(path: str | Path, root: str | Path) -> str:
    """The stable key of an image-folder item: its path relative to ``root``, with ``/``."""
    return Path(path).relative_to(root).as_posix()


def tie_break_ranks(db_ids: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """Each database item's place in the database's order: its position, or with ``db_ids``
    its rank in a stable sort by them (= its position once the database is sorted by key)."""
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
    tie_ranks: np.ndarray | None = None,
    k: int | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k database indices per query, by (distance, place in the database's order).

    ``tie_ranks`` comes from :func:`tie_break_ranks` (None: the position). ``exclude`` is a
    boolean (Q, N) mask of items a query must not retrieve (itself, its own video); they are
    pushed past every real item and dropped. Returns (indices, valid) where ``valid`` is
    False in slots that had to be filled with excluded items (only when fewer than ``k``
    candidates remain).
    """
    nq, n = distances.shape
    k = n if k is None else min(k, n)
    if tie_ranks is None:
        tie_ranks = np.arange(n, dtype=np.int64)
    # One int64 key: distance major, tie rank minor -> a single sort gives the exact order.
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


def cosine(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(Q, N) similarities of unit descriptors (float16 or float32 rows), float64 rounded to
    1e-7: the same pair gets the same score whichever batch it is computed in (a BLAS
    product's last bits depend on the shapes), so two-stage orders agree everywhere."""
    product = np.asarray(queries, np.float64) @ np.asarray(items, np.float64).T
    return np.round(product, 7)


def two_stage_keys(
    distances: np.ndarray,
    scores: np.ndarray,
    candidates: int,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Ranking keys (Q, N) int64 that put items in two-stage search order.

    The first stage is the ``candidates`` best by (distance, place in the database's
    order), among the items not excluded; they come first, by descending ``scores`` (ties
    keep their first-stage order). Every other item follows in (distance, place) order, as
    a codes-only ranking would list it. This is :meth:`vidhash.index.search.index.Index.search`'s
    order; feed the keys to :func:`rank_by_distance` as its distances.
    """
    nq, n = distances.shape
    first, valid = rank_by_distance(distances, None, min(candidates, n), exclude)
    keys = distances.astype(np.int64) + candidates  # after every candidate
    picked_scores = np.where(valid, np.take_along_axis(scores, first, 1), -np.inf)
    order = np.argsort(-picked_scores, axis=1, kind="stable")
    rows = np.repeat(np.arange(nq), first.shape[1]).reshape(first.shape)
    ranked = np.take_along_axis(first, order, 1)
    keys[rows, ranked] = np.arange(first.shape[1])[None, :]
    return keys


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


def mean_average_precision(
    query_codes: np.ndarray,
    query_labels: np.ndarray,
    db_codes: np.ndarray,
    db_labels: np.ndarray,
    topk: int | None = None,
    code_bits: int | None = None,
    db_ids: Sequence | np.ndarray | None = None,
) -> float:
    """MAP@topk of packed codes (DLBHC R_K normalisation); ``topk=None`` is mAP@all.

    Ties follow the tie rule: the database's order, or the order of ``db_ids`` if given.
    """
    nq, n = len(query_codes), len(db_codes)
    tie = tie_break_ranks(db_ids, n)
    aps = []
    for block in blocks(nq, query_block(n)):
        dist = hamming(query_codes[block][:, None], db_codes, code_bits)
        rel = relevance_matrix(query_labels[block], db_labels)
        order, _ = rank_by_distance(dist, tie, topk)
        aps.append(average_precision_batch(np.take_along_axis(rel, order, 1)))
    return float(np.concatenate(aps).mean()) if nq else 0.0
