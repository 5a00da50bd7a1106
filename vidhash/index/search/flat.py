"""The in-memory flat Hamming engine: exact top-k and radius search over packed codes.

:class:`HammingSearcher` is FAISS ``IndexBinaryFlat`` over codes padded to 64 bits with
counting top-k (``use_heap = False``), which keeps, for each distance, the lowest row
numbers of its in-order scan: the k best by (distance, row) exactly, whatever the thread
count. The benchmarks compare the search file's engine (:mod:`vidhash.index.search.engine`)
against it; row numbers in, row numbers out.
"""

from __future__ import annotations

import numpy as np

from vidhash.index.store.codes import as_code_array, pad_to_64

# FAISS's counting top-k holds (queries x (bits+1) x k) int64 ids; keep a batch under this.
_MC_BUDGET_BYTES = 64 << 20


class HammingSearcher:
    """Exact top-k Hamming search over packed codes; row numbers in, row numbers out."""

    def __init__(self, codes: np.ndarray) -> None:
        import faiss

        codes = as_code_array(codes)
        self.nbytes = codes.shape[1]
        padded = pad_to_64(codes)
        self._faiss = faiss.IndexBinaryFlat(padded.shape[1] * 8)
        self._faiss.use_heap = False  # counting top-k: ties come out in row order
        if len(padded):
            self._faiss.add(padded)

    def __len__(self) -> int:
        return int(self._faiss.ntotal)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by (distance, row): (Q, k) int32 distances and int64 rows, -1 past the end.

        ``allowed`` is an optional boolean mask over rows; excluded rows are skipped inside
        FAISS (an ``IDSelectorBitmap``), so exclusion costs no over-fetching.
        """
        queries = pad_to_64(as_code_array(queries, self.nbytes))
        n_queries = len(queries)
        distances = np.full((n_queries, k), np.iinfo(np.int32).max, dtype=np.int32)
        rows = np.full((n_queries, k), -1, dtype=np.int64)
        if k <= 0 or n_queries == 0 or len(self) == 0:
            return distances, rows
        import faiss

        params = None
        if allowed is not None:
            if not allowed.any():
                return distances, rows
            bitmap = np.packbits(allowed.astype(bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            params = faiss.SearchParameters(sel=selector)
        k_faiss = min(k, len(self))
        buckets = queries.shape[1] * 8 + 1
        batch = max(1, _MC_BUDGET_BYTES // (buckets * k_faiss * 8))
        for start in range(0, n_queries, batch):
            chunk = queries[start : start + batch]
            d, i = self._faiss.search(chunk, k_faiss, params=params)
            distances[start : start + batch, :k_faiss] = d
            rows[start : start + batch, :k_faiss] = i
        # Already in (distance, row) order; sort anyway so the contract never rests on it.
        order = np.lexsort((rows, distances), axis=-1)
        distances = np.take_along_axis(distances, order, axis=-1)
        rows = np.take_along_axis(rows, order, axis=-1)
        missing = rows < 0
        rows[missing] = -1
        distances[missing] = np.iinfo(np.int32).max
        if params is not None:
            del selector, bitmap  # FAISS reads both through raw pointers: alive until here
        return distances, rows

    def range(
        self, queries: np.ndarray, radius: int, allowed: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every row within ``radius`` (inclusive) of each query, in (distance, row) order."""
        queries = pad_to_64(as_code_array(queries, self.nbytes))
        if len(self) == 0:
            empty = (np.zeros(0, np.int32), np.zeros(0, np.int64))
            return [empty for _ in range(len(queries))]
        lims, dist, rows = self._faiss.range_search(queries, int(radius) + 1)
        out = []
        for q in range(len(queries)):
            d = dist[lims[q] : lims[q + 1]].astype(np.int32)
            r = rows[lims[q] : lims[q + 1]].astype(np.int64)
            keep = d <= radius
            if allowed is not None:
                keep &= allowed[r]
            d, r = d[keep], r[keep]
            order = np.lexsort((r, d))
            out.append((d[order], r[order]))
        return out
