"""The hashing benchmark's scores over packed binary codes: mAP@K, precision@k, PR curve.

Ranking, the tie rule, AP@K and mAP are :mod:`vidhash.metrics`' (one implementation for
training reports, protocols and concept evaluation); this module adds what only
``benchmark-hashing`` reports, computed in one pass over the same distances.

Definitions (written into every report; the ranking, AP@K and MAP ones follow):

* **precision@k** is the fraction of relevant items in the top ``k``, averaged over queries.
* **Precision-recall by Hamming radius**: for each radius ``r``, the items with distance
  ``<= r`` are retrieved; precision = relevant retrieved / retrieved (averaged over the
  queries that retrieve at least one item), recall = relevant retrieved / relevant in the
  database (averaged over queries that have at least one relevant item).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidhash import metrics as core
from vidhash.metrics import (
    average_precision_batch,
    blocks,
    hamming,
    query_block,
    rank_by_distance,
    relevance_matrix,
    tie_break_ranks,
)
from vidhash.metrics import mean_average_precision as mean_average_precision  # public name

# Reports print this docstring's definitions: append the shared ones.
_SHARED = (core.__doc__ or "").split("(written into every report):")[-1].strip()
__doc__ = f"{(__doc__ or '').rstrip()}\n{_SHARED}\n"


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
    for block in blocks(nq, query_block(n)):
        dist = hamming(query_codes[block][:, None], db_codes, code_bits)
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
