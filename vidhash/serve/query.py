"""Uploaded image -> hash code and descriptor, with the index's own model.

Contracts:

* :func:`decode_upload` turns the uploaded bytes into the 224x224 RGB crop the model
  reads, exactly as ``vidhash index`` reads a still image (:func:`vidhash.media.read_rgb`,
  EXIF orientation applied; :func:`vidhash.query.image_pixels`), so an indexed photo
  uploaded again finds itself at distance 0. It raises :class:`UploadError` (with the
  HTTP status to answer) for bytes that are no image or an image too large to decode.
* :class:`QueryEncoder` loads the index's model through :func:`vidhash.query.index_model`
  (the identity check and the one-line "rebuild it" message for an older model), keeps
  it (one per model id) and serialises its use with one lock; it is called from worker
  threads, never from the event loop. It embeds (code and descriptor from one forward
  pass, as ``vidhash index`` stored them), so an upload gets the same two-stage search
  as a keyframe query.
"""

from __future__ import annotations

import io
import logging
import os
import threading

import numpy as np

from vidhash.errors import InputError, VidhashError

log = logging.getLogger("vidhash.serve")


class UploadError(ValueError):
    """An upload the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The model's input crop of an uploaded image (224x224x3 uint8)."""
    from PIL import Image, UnidentifiedImageError

    from vidhash.media import read_rgb
    from vidhash.query import image_pixels

    if not data:
        raise UploadError(400, "the upload is empty")
    try:  # read only the header first: a small file can claim a huge picture
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        raise UploadError(413, "the image has too many pixels to decode safely") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise UploadError(415, "the upload is not an image (JPEG, PNG, WebP, BMP, ...)") from None
    if width * height > max_pixels:
        raise UploadError(
            413, f"the image is {width}x{height} pixels; the limit is {max_pixels:,} pixels"
        )
    try:
        rgb = read_rgb(data)
    except InputError:
        raise UploadError(415, "the upload is not a readable image") from None
    return image_pixels(rgb)


class QueryEncoder:
    """The index's model, loaded once (lazily, or by :meth:`preload`) and kept."""

    def __init__(self, root: str | os.PathLike) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._model = None
        self._model_id: str | None = None
        self._failure: tuple[str, str] | None = None  # (model_id, reason): do not retry

    def embed(self, pixels: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """(code, descriptor or None) of one crop. Raises :class:`ModelUnavailable` with a
        one-line reason."""
        with self._lock:
            model_id = meta["model_id"]
            if self._failure is not None and self._failure[0] == model_id:
                raise ModelUnavailable(self._failure[1])
            if self._model_id != model_id:
                from vidhash.query import index_model

                try:
                    self._model = index_model(self._root, meta)
                except (VidhashError, OSError) as exc:
                    reason = f"cannot encode images with the index's model: {exc}"
                    self._failure = (model_id, reason)
                    raise ModelUnavailable(reason) from None
                self._model_id = model_id
            codes, descriptors = self._model.embed(pixels[None])
            return codes[0], None if descriptors is None else descriptors[0]

    def preload(self, meta: dict) -> None:
        """Load the model now (call from a background thread); failures are kept."""
        try:
            self.embed(np.zeros((224, 224, 3), np.uint8), meta)
        except ModelUnavailable as exc:
            log.warning("image queries will be refused: %s", exc)

    @property
    def status(self) -> str:
        """``ready``, ``loading``, ``unavailable`` (see :attr:`error`) or ``not loaded``."""
        if self._model is not None:
            return "ready"
        if self._failure is not None:
            return "unavailable"
        return "loading" if self._lock.locked() else "not loaded"

    @property
    def error(self) -> str | None:
        return self._failure[1] if self._failure is not None else None


class ModelUnavailable(RuntimeError):
    """The index's model cannot be loaded here, or is not the model that made the codes."""
