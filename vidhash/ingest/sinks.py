"""Where a run's results go: the folder sink (``vidhash extract``) or the index sink.

Both are stores of the one layout (:mod:`vidhash.index.store.layout`): a videos row per input as
its commit record, a keyframes part per input, keyframe JPEGs under ``images/``. The
folder sink is a :class:`~vidhash.index.store.parts.PartStore` whose keyframes carry no codes and
which keeps every copy of identical content; the index sink is the
:class:`~vidhash.index.IndexStore` (codes, the model's meta, one owner per content).
Opening either takes the writer lock and repairs what an interrupted run left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from vidhash.errors import UsageError
from vidhash.index import IndexStore
from vidhash.index.store.layout import is_index, keyframes_schema
from vidhash.index.store.parts import Check, PartStore


class Encoder(Protocol):
    """What a run needs of a model: packed codes and descriptors (``embed``, see
    :class:`vidhash.models.nets.Embedding`) for a batch of size x size RGB frames."""

    model_id: str
    code_bits: int
    descriptor_dims: int

    def embed(self, images: np.ndarray): ...


class Sink(Protocol):
    """The store a runner writes to (both sinks implement it)."""

    root: Path

    def committed(self) -> dict[str, dict[str, Any]]: ...

    def check(self, full: bool = False) -> Check: ...

    def drop_videos(self, paths: list[str]) -> list[str]: ...

    def write_row(self, row: dict[str, Any]) -> None: ...

    def write_image(self, keyframe_id: str, image: bytes) -> str: ...

    def commit(self, video_row: dict, keyframes: list[dict] | pa.Table | None = None) -> str: ...


def open_folder(out: str | os.PathLike) -> PartStore:
    """The folder sink at ``out`` (created if needed), locked for this writer."""
    root = Path(out)
    if is_index(root):
        raise UsageError(f"{root} is a vidhash index; extract into another folder")
    if (root / "manifest").is_dir():
        raise UsageError(f"{root} holds an older vidhash extract's output; use a new folder")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder")
    store = PartStore(root, keyframes_schema(None))
    store.acquire()
    return store


def open_index(
    out: str | os.PathLike, encoder: Encoder, source: str | None, *, reindex: bool = False
) -> IndexStore:
    """The index sink at ``out``: created, or checked to hold this model's codes."""
    meta = model_meta(encoder, source)
    return IndexStore.open(out, model_meta=meta, reindex=reindex, create=True)


def model_meta(encoder: Encoder, source: str | None = None) -> dict[str, Any]:
    """The model identity an index records and checks on every later run.

    ``model_name`` is what a query reloads the model by: a shipped name as is, a
    checkpoint as its absolute path.
    """
    from vidhash import __version__
    from vidhash.models import SHIPPED_NAMES

    config = getattr(encoder, "config", {}) or {}
    if source is not None and source not in SHIPPED_NAMES:
        name = str(Path(source).resolve())
    else:
        name = source or getattr(encoder, "model_name", None) or encoder.model_id[:12]
    return {
        "model_id": encoder.model_id,
        "model_name": name,
        "model_config": json.dumps(config, sort_keys=True, default=str),
        "code_bits": int(encoder.code_bits),
        "descriptor_dims": int(encoder.descriptor_dims),
        "vidhash_version": __version__,
    }
