"""Test-set mAP for the ``train-hash`` report, scored exactly as ``benchmark-hashing`` scores.

Queries: the test images; database: the first training root. Both are handed over as the
0/1 bits the trainer has; the score itself is :func:`vidhash.metrics.mean_average_precision`
with the database keyed by relative file path (:func:`vidhash.metrics.path_key`), the
same tie rule and keys as the hashing protocols, so the two commands agree on the same codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidhash.metrics import mean_average_precision, path_key


def database_keys(files: Sequence[str | Path], root: str | Path) -> list[str]:
    """The stable key of each database image: its path relative to its image folder."""
    return [path_key(f, root) for f in files]


def retrieval_map(
    query_bits: np.ndarray,
    query_labels: np.ndarray,
    db_bits: np.ndarray,
    db_labels: np.ndarray,
    db_keys: Sequence[str],
    topk: int | None = None,
) -> float:
    """mAP@topk (``None`` = all) of 0/1 bit matrices (Q, L) and (N, L), ties by ``db_keys``."""
    code_bits = np.shape(query_bits)[1]
    return mean_average_precision(
        np.packbits(np.asarray(query_bits, dtype=bool), axis=1),
        np.asarray(query_labels),
        np.packbits(np.asarray(db_bits, dtype=bool), axis=1),
        np.asarray(db_labels),
        topk,
        code_bits,
        db_ids=db_keys,
    )
