"""Queries that need the index's model: a picture, or the frame on screen at t of a video.

Contract: a query is preprocessed exactly as indexing does (the one image reader, the one
center crop; for a video the frame *exact* sampling would deliver at t) and encoded by
the very model that made the index's codes. Which model that is, is checked before
anything is encoded: the index's ``meta`` records the model's sha256 (``model_id``), its
name (a shipped name, or a checkpoint's absolute path) and the vidhash version. When that
model cannot be loaded any more (a newer vidhash ships another ``default``, a checkpoint
was moved or changed), the query fails in one line naming the index's model and how to
rebuild it; keyframe-id searches, which need no model, keep working.

``vidhash.Index`` is :class:`Index` here: the index layer's ``Index`` (which never imports
torch) plus :meth:`Index.search_image` and :meth:`Index.search_frame`. Used by
``vidhash search`` and the Python API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.errors import CheckpointError, DecodeError, InputError, ModelMismatchError, UsageError
from vidhash.fsutil import content_hash
from vidhash.index.search import index as search
from vidhash.index.store.paths import describe_model, rebuild_hint
from vidhash.media import read_rgb
from vidhash.models import SHIPPED_NAMES, load_model, shipped_models
from vidhash.transforms import DEFAULT_SIZE, center_crop_resize


def unavailable(name: str, model_id: str) -> str | None:
    """Why ``name`` cannot load the model ``model_id``, when that shows without hashing a
    file (a shipped name's registry entry, a missing checkpoint); None: load and compare."""
    registry = shipped_models()
    if name in registry:
        sha = registry[name]["sha256"]
        return None if sha == model_id else f"this vidhash's {name} is sha256 {sha[:12]}"
    if name in SHIPPED_NAMES:
        return f"this vidhash ships no {name}"
    return None if Path(name).is_file() else f"{name} no longer exists"


def index_model(
    root: str | os.PathLike, meta: dict[str, Any], model: str | None = None, device: str = "cpu"
):
    """The network that made the index's codes (``model`` overrides the recorded name).

    Raises :class:`ModelMismatchError` (one line) when it is not that network. The
    checkpoint is hashed once, by loading it.
    """
    name = model or meta.get("model_name")
    if not name:
        raise UsageError(f"index {root} does not name its model; give the checkpoint")
    if model is not None:
        net = load_model(name, device=device)
        if net.model_id != meta["model_id"]:
            raise ModelMismatchError(
                f"model {name} ({net.model_id[:16]}) is not the index's model "
                f"({meta['model_id'][:16]}, {meta.get('model_name')})"
            )
        return net
    why = unavailable(name, meta["model_id"])
    net = None
    if why is None:
        try:
            net = load_model(name, device=device)
        except CheckpointError:  # the recorded checkpoint was replaced by something else
            net = None
        if net is None or net.model_id != meta["model_id"]:
            sha = net.model_id if net is not None else content_hash(name)
            why = f"{name} now has sha256 {sha[:12]}"
    if why is not None:
        raise ModelMismatchError(
            f"index {root} was built with model {describe_model(meta)}, which is not "
            f"available ({why}); keyframe searches still work; " + rebuild_hint(root)
        )
    return net


def image_pixels(image: str | os.PathLike | np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A query picture (a file, or RGB uint8 pixels) preprocessed as keyframes are."""
    if not isinstance(image, np.ndarray):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"query image not found: {path}")
        image = read_rgb(path)
    return center_crop_resize(np.asarray(image, np.uint8), size)


def frame_pixels(
    video: str | os.PathLike, at: float, backend: str = "pyav", size: int = DEFAULT_SIZE
) -> np.ndarray:
    """The frame on screen at ``at`` seconds (the stream's clock, as ``pts_time``)."""
    from vidhash.video.sampling import frame_at  # video decoding only for frame queries
    from vidhash.video.stream import open_video, require_backend

    require_backend(backend)
    path = Path(video)
    if not path.is_file():
        raise InputError(f"query video not found: {path}")
    try:
        with open_video(path, backend=backend) as stream:
            info = stream.info
            if info.duration is not None and at > info.start_time + info.duration:
                raise UsageError(f"{at} s is past the end of {path} ({info.duration:.2f} s)")
            rgb = frame_at(stream, at).rgb()
    except DecodeError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return center_crop_resize(rgb, size)


class Index(search.Index):
    """``vidhash.Index``: exact two-stage search, plus queries embedded by the index's model."""

    _net: Any = None

    def embed(self, pixels: np.ndarray, model: str | None = None, device: str = "cpu"):
        """The code and descriptor (``Embedding`` of one row) of one preprocessed query
        (size x size RGB) under the index's model."""
        if self._net is None or model is not None:
            self._net = index_model(self.root, self.meta, model, device)
        return self._net.embed(pixels[None])

    def search_pixels(
        self,
        pixels: np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        *,
        model: str | None = None,
        device: str = "cpu",
        **options: Any,
    ) -> list[search.Hit]:
        """Keyframes that look like one preprocessed query; ``options`` as
        :meth:`Index.search` takes them (``rerank``, ``candidates``, ``concept``, ...)."""
        codes, descriptors = self.embed(pixels, model, device)
        one = None if descriptors is None else descriptors[0]
        return self.search(codes[0], k=k, radius=radius, descriptors=one, **options)

    def search_image(
        self,
        image: str | os.PathLike | np.ndarray,
        k: int | None = 10,
        radius: int | None = None,
        **options: Any,
    ) -> list[search.Hit]:
        """Keyframes that look like a picture (a file or RGB pixels), best first."""
        return self.search_pixels(image_pixels(image), k, radius, **options)

    def search_frame(
        self,
        video: str | os.PathLike,
        at: float,
        k: int | None = 10,
        radius: int | None = None,
        *,
        backend: str = "pyav",
        **options: Any,
    ) -> list[search.Hit]:
        """Keyframes that look like the frame on screen at ``at`` s of ``video``."""
        return self.search_pixels(frame_pixels(video, at, backend), k, radius, **options)
