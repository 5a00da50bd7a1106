"""Hamming-ranking mAP for the training reports (the DLBHC protocol's mAP@k).

A small stand-in used at the end of ``train-hash``; the full evaluation layer lives in
``vidhash.eval`` (which reads an index). Ranking: Hamming distance, ties broken by
database order (stable sort), as the reference DLBHC/DSH evaluation scripts do.
"""

from __future__ import annotations

import numpy as np


def hamming_distances(query_bits: np.ndarray, db_bits: np.ndarray) -> np.ndarray:
    """(Q, N) int distances between 0/1 bit matrices (unpacked), via one matrix product."""
    q = query_bits.astype(np.float32)
    d = db_bits.astype(np.float32)
    agree = q @ d.T + (1 - q) @ (1 - d).T
    return (q.shape[1] - agree).round().astype(np.int32)


def mean_average_precision(
    query_bits: np.ndarray,
    query_labels: np.ndarray,
    db_bits: np.ndarray,
    db_labels: np.ndarray,
    topk: int | None = None,
    chunk: int = 250,
) -> float:
    """mAP@topk: per query, mean precision at each relevant rank within the top k
    (queries with no relevant item in the top k count as AP 0); ``topk=None`` = all."""
    k = len(db_bits) if topk is None else min(topk, len(db_bits))
    aps = []
    for start in range(0, len(query_bits), chunk):
        dist = hamming_distances(query_bits[start : start + chunk], db_bits)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        relevant = db_labels[order] == query_labels[start : start + chunk, None]
        hits = np.cumsum(relevant, axis=1)
        precision = hits / np.arange(1, k + 1)
        n_rel = relevant.sum(1)
        ap = np.where(n_rel > 0, (precision * relevant).sum(1) / np.maximum(n_rel, 1), 0.0)
        aps.append(ap)
    return float(np.concatenate(aps).mean())
