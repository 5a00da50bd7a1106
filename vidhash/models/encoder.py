"""The face every inference runtime shows: uint8 crops in, packed codes and descriptors out.

Contract (both runtimes, torch's :class:`vidhash.models.nets.HashNet` and ONNX Runtime's
:class:`vidhash.models.ort.OrtHashNet`):

* ``embed(images)`` takes uint8 RGB crops ``(N, H, W, 3)`` and returns an
  :class:`Embedding`: codes ``(N, ceil(L/8))`` uint8, bit 1 where the hash layer's
  ``r >= 0.5``, packed big-endian per byte (numpy ``packbits``); descriptors ``(N, dims)``
  float16 unit vectors, or None for a model without one. ``encode`` is its codes.
* The network runs in float32 on both, from the same tensors, so the runtimes differ only
  by float rounding: at most 1 code bit in 10,000 and 1e-4 on the floats
  (tests/test_models_onnx.py). ``model_id`` is the checkpoint file's sha256, whatever runs
  it, so an index built by one runtime is searched by the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

DESCRIPTOR_DTYPE = np.float16  # what an index stores
CPU_MICRO_BATCH = 4
GPU_MICRO_BATCH = 64

Floats = tuple[np.ndarray, np.ndarray | None]  # (r (n, L), descriptors (n, dims) or None)


class Embedding(NamedTuple):
    """Packed codes and (when the model has one) the unit-length float16 descriptors."""

    codes: np.ndarray  # (N, ceil(L/8)) uint8
    descriptors: np.ndarray | None  # (N, dims) float16


def check_images(images: np.ndarray) -> np.ndarray:
    """The crops as a uint8 (N, H, W, 3) array, or a ValueError naming what came instead."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"encode expects uint8 RGB (N,H,W,3), got {images.dtype} {images.shape}")
    return images


def embed_batches(
    images: np.ndarray,
    batch_size: int,
    code_bits: int,
    dims: int,
    forward: Callable[[np.ndarray], Floats],
) -> Embedding:
    """Run ``forward`` (one micro-batch of crops -> float r and descriptors) over
    ``images`` and pack its outputs: the one place codes are thresholded and packed."""
    images = check_images(images)
    if len(images) == 0:
        empty = np.zeros((0, dims), DESCRIPTOR_DTYPE) if dims else None
        return Embedding(np.zeros((0, math.ceil(code_bits / 8)), np.uint8), empty)
    outputs = [
        forward(np.ascontiguousarray(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    return pack(outputs)


def pack(outputs: Iterable[Floats]) -> Embedding:
    """Embedding of per-batch float outputs: codes where r >= 0.5, float16 descriptors."""
    codes, descriptors = [], []
    for r, desc in outputs:
        codes.append(np.packbits(np.asarray(r) >= 0.5, axis=1))
        if desc is not None:
            descriptors.append(np.asarray(desc).astype(DESCRIPTOR_DTYPE))
    return Embedding(
        np.concatenate(codes).astype(np.uint8, copy=False),
        np.concatenate(descriptors) if descriptors else None,
    )
