"""PCA and PCA-ITQ (Gong & Lazebnik 2011): the strongest simple training-free binary code.

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


@dataclass(frozen=True)
class PCA:
    """``(x - mean) @ projection``: the leading principal axes (columns, largest first),
    each divided by its standard deviation when whitened."""

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, dims)
    variance: np.ndarray  # (dims,) the variance along each axis


def fit_pca(features: np.ndarray, dims: int, whiten: bool = False, fix_signs: bool = True) -> PCA:
    """The ``dims`` leading principal axes of ``features`` (N, D); ``fix_signs`` makes each
    axis's largest entry positive, so that refits on the same data agree."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2 or x.shape[1] < dims:
        raise ValueError(f"PCA needs >= 2 rows of >= {dims} features, got shape {x.shape}")
    mean = x.mean(0)
    centred = x - mean
    values, vectors = np.linalg.eigh(centred.T @ centred)
    basis = vectors[:, ::-1][:, :dims]
    if fix_signs:
        basis = basis * np.sign(basis[np.abs(basis).argmax(0), np.arange(dims)])
    variance = np.maximum(values[::-1][:dims], 0.0) / (len(x) - 1)
    if whiten:
        basis = basis / np.sqrt(variance + 1e-6 * variance.max())
    return PCA(mean.astype(np.float32), basis.astype(np.float32), variance.astype(np.float32))


def fit_itq(features: np.ndarray, bits: int, iterations: int = 50, seed: int = 0) -> ITQ:
    """PCA to ``bits`` dimensions, then ``iterations`` of ITQ's rotation updates."""
    pca = fit_pca(features, bits, fix_signs=False)  # the rotation's start, as before
    basis = pca.projection.astype(np.float64)
    v = (np.asarray(features, np.float64) - pca.mean) @ basis
    mean = pca.mean
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((bits, bits)))
    for _ in range(iterations):
        u, _, wt = np.linalg.svd(np.sign(v @ rotation).T @ v)
        rotation = (u @ wt).T
    return ITQ(mean.astype(np.float32), (basis @ rotation).astype(np.float32))


def itq_bits(features: np.ndarray, model: ITQ) -> np.ndarray:
    """(N, bits) bool: bit 1 where the projected, centred feature is >= 0."""
    return (np.asarray(features, np.float32) - model.mean) @ model.projection >= 0
