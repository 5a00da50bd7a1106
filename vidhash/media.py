"""The one image reader and the one JPEG writer, shared by ingest, training, eval and sheets.

Contracts:

* :func:`read_rgb` returns any still (JPEG, PNG, WebP, BMP, palette, grey, CMYK, 16-bit)
  as upright HxWx3 RGB uint8: the EXIF orientation is applied, so a phone photo looks the
  same to training, indexing, queries and contact sheets. An unreadable file is an
  :class:`~vidhash.errors.InputError` with one line saying why.
* :func:`encode_jpeg` is the only keyframe JPEG encoder: the same pixels and quality give
  the same bytes, wherever they are encoded (a local thread or a Ray worker).

PIL only (no torch, no video): this module sits at the bottom of the layers.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidhash.errors import InputError

JPEG_QUALITY = 90


def read_rgb(source: str | os.PathLike | bytes) -> np.ndarray:
    """An image file (or its bytes, e.g. an upload) as upright RGB uint8 (EXIF applied)."""
    name = "upload" if isinstance(source, bytes) else source
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise InputError(f"cannot read image {name}: unknown image format") from exc
    except Exception as exc:  # noqa: BLE001 - every decoder failure is the same input error
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise InputError(f"cannot read image {name}: {lines[0]}") from exc


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an HxWx3 RGB uint8 image (deterministic for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
