"""How :meth:`vidhash.index.search.index.Index.search` reads its arguments.

One code (``bytes`` or 1-D) is one query and gets one list of hits; a 2-D array is a batch
and gets a list per query, even a batch of one. Query descriptors follow the codes: (D,)
with one code, (Q, D) with a batch. Exclusions are one set of video ids for all queries
or one set (or None) per query; queries that share a set are searched together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def one_code(codes: Any) -> bool:
    """One query code (``bytes`` or 1-D), not a batch (2-D)."""
    return isinstance(codes, (bytes, bytearray, memoryview)) or np.ndim(codes) == 1


def check_limits(k: int | None, radius: int | None, candidates: int | None) -> None:
    """Refuse a ``k``, ``radius`` or ``candidates`` no search can honour (ValueError)."""
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k is None and radius is None:
        raise ValueError("give k, radius, or both")
    if radius is not None and radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if candidates is not None and candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")


def query_descriptors(descriptors: Any, n_queries: int, dims: int) -> np.ndarray | None:
    """(Q, D) float32, or None when either side has no descriptors (``dims`` 0)."""
    if descriptors is None or not dims:
        return None
    desc = np.asarray(descriptors, np.float32)
    desc = desc[None] if desc.ndim == 1 else desc
    if desc.shape != (n_queries, dims):
        raise ValueError(f"descriptors must be ({n_queries}, {dims}), got {desc.shape}")
    return desc


def exclusion_groups(exclude: Any, n_queries: int) -> dict[frozenset, list[int]]:
    """Group queries by their exclusion set: one pass per distinct set."""
    if exclude is None:
        return {frozenset(): list(range(n_queries))}
    if isinstance(exclude, str):
        return {frozenset([exclude]): list(range(n_queries))}
    exclude = list(exclude)
    per_query = len(exclude) > 0 and all(
        e is None or (not isinstance(e, str) and isinstance(e, Iterable)) for e in exclude
    )
    if not per_query:
        return {frozenset(exclude): list(range(n_queries))}
    if len(exclude) != n_queries:
        raise ValueError(f"exclude_video_ids has {len(exclude)} sets for {n_queries} queries")
    groups: dict[frozenset, list[int]] = {}
    for q, e in enumerate(exclude):
        key = frozenset([e] if isinstance(e, str) else (e or ()))
        groups.setdefault(key, []).append(q)
    return groups
