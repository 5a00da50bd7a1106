"""Fit a hashing net's descriptor (:mod:`vidhash.models.descriptor`) on an unlabelled pool.

``fit_descriptor(net, pool, source="head", dims=256)`` runs the net over the pool's
center crops once, averages the ``source`` map (or takes the hash head's hidden layer),
fits PCA (:func:`vidhash.train.itq.fit_pca`) and stores the projection in the net. The
codes are untouched: the net's other tensors do not change, so an index's codes stay
valid, but the checkpoint written afterwards has a new sha256 (a new ``model_id``), since
the descriptor is part of what the model computes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vidhash.models.descriptor import pooled
from vidhash.models.nets import HashNet
from vidhash.train.itq import fit_pca


def pooled_features(
    net: HashNet, images: Callable[[int], np.ndarray], n: int, source: str, batch: int = 4
) -> np.ndarray:
    """(n, F) float32: what the descriptor of ``source`` projects, for ``images(i)``."""
    out = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, n, batch):
            crops = np.stack([images(i) for i in range(start, min(start + batch, n))])
            x = torch.from_numpy(crops).to(net.device).permute(0, 3, 1, 2).float() / 255.0
            out.append(pooled(source, *net.maps_and_hidden(x)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def fit_descriptor(net: HashNet, pool, source: str = "head", dims: int = 256) -> dict:
    """Fit ``net``'s descriptor on ``pool`` (anything with ``len`` and ``pool[i] -> (crop,
    label)``, e.g. :class:`vidhash.train.pool.UnlabelledPool`); returns its header entry."""
    if len(pool) <= dims:
        raise ValueError(f"a {dims}-d descriptor needs more than {dims} pool images")
    features = pooled_features(net, lambda i: pool[i][0], len(pool), source)
    pca = fit_pca(features, dims)
    net.add_descriptor(source, dims).fit(pca.mean, pca.projection)
    explained = float(pca.variance.sum() / features.var(0, ddof=1).sum())
    return {"source": source, "dims": dims, "pool_images": len(pool),
            "explained_variance": round(explained, 4)}  # fmt: skip
