"""The keyframe descriptor: a small unit vector the two-stage search re-ranks codes by.

A code finds candidates fast; it cannot order them finely (48 bits, ties by the hundred).
The descriptor is the model's second output: a feature the network already computes,
globally averaged, centred and projected on its leading principal axes (fitted once, on an
unlabelled pool of varied photos and video frames), then scaled to unit length. It is
stored as float16 beside the code (``dims * 2`` bytes a keyframe), and the search ranks
candidates by the dot product of two descriptors: their cosine similarity.

Contracts:

* The projection is part of the model: its tensors live in the checkpoint (so in the
  model's sha256, its ``model_id``) and its settings in the header under ``descriptor``
  (``source``, ``dims``, ``fitted_on``). A checkpoint without them describes nothing, and
  an index it builds searches by codes alone.
* ``source`` names what is projected: a backbone level (``"head"``: the 1280-d map the
  float anchor of docs/RESULTS.md averages) or ``"fc"``, the hash head's last hidden layer.
  Which one ships, with how many dimensions, is chosen by ``benchmarks/descriptor.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SOURCES = ("head", "s32", "fc")
DTYPE = np.float16  # what an index stores


def pooled(source: str, maps: dict[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
    """The flat vector a descriptor of ``source`` projects, from a forward pass's tensors."""
    return hidden if source == "fc" else maps[source].mean((2, 3))


class Descriptor(nn.Module):
    """``normalize((pool(source) - mean) @ projection)``: (N, dims) unit vectors."""

    def __init__(self, source: str, in_features: int, dims: int) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"descriptor source must be one of {SOURCES}, got {source!r}")
        if not 0 < dims <= in_features:
            raise ValueError(f"descriptor dims must be in 1..{in_features}, got {dims}")
        self.source = source
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("projection", torch.zeros(in_features, dims))

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    def config(self) -> dict:
        return {"source": self.source, "dims": self.dims}

    @torch.no_grad()
    def fit(self, mean: np.ndarray, projection: np.ndarray) -> None:
        """Set the projection (e.g. :func:`vidhash.train.itq.fit_pca` on pooled features)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.projection.copy_(torch.as_tensor(projection, dtype=self.projection.dtype))

    def forward(self, maps: dict[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
        projected = (pooled(self.source, maps, hidden) - self.mean) @ self.projection
        return F.normalize(projected, dim=1)
