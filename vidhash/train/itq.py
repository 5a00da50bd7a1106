"""PCA-ITQ (Gong & Lazebnik 2011): the strongest simple training-free binary code.

``fit_itq(features, bits)`` centres the features, projects them on their ``bits`` leading
principal components and finds the rotation that minimises the quantisation error of
``sign(V R)``; ``itq_bits(features, model)`` applies it. vidhash uses it twice: as the
anchor a trained code must beat (``benchmarks/codes.py``) and, with ``train-hash --init
itq``, as the starting point of the hash head (:meth:`HashHead.init_linear_code`): the
network then begins as the ITQ code of its own input and training only improves on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ITQ:
    """``code(x) = (x - mean) @ projection >= 0``; projection = PCA basis @ rotation."""

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, bits)


def fit_itq(features: np.ndarray, bits: int, iterations: int = 50, seed: int = 0) -> ITQ:
    """PCA to ``bits`` dimensions, then ``iterations`` of ITQ's rotation updates."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2 or x.shape[1] < bits:
        raise ValueError(f"ITQ needs >= 2 rows of >= {bits} features, got shape {x.shape}")
    mean = x.mean(0)
    centred = x - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    basis = vectors[:, ::-1][:, :bits]
    v = centred @ basis
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((bits, bits)))
    for _ in range(iterations):
        u, _, wt = np.linalg.svd(np.sign(v @ rotation).T @ v)
        rotation = (u @ wt).T
    return ITQ(mean.astype(np.float32), (basis @ rotation).astype(np.float32))


def itq_bits(features: np.ndarray, model: ITQ) -> np.ndarray:
    """(N, bits) bool: bit 1 where the projected, centred feature is >= 0."""
    return (np.asarray(features, np.float32) - model.mean) @ model.projection >= 0
