"""Where things are in a root of per-input parts (an index or an extract folder): names only.

No pyarrow here, so a search opens an index without loading the Parquet machinery
(:mod:`vidhash.index.store.layout` adds the schemas). The layout (docs/SCHEMA.md)::

    ROOT/meta/meta.parquet                 index only: the model that made the codes
    ROOT/videos/part-<key>.parquet         one row per input, any status (the commit record)
    ROOT/keyframes/part-<key>.parquet      the keyframes of one input
    ROOT/annotations/annotations.parquet   index only: concept labels
    ROOT/images/<hash16>/<keyframe_id>.jpg keyframe JPEGs
    ROOT/search/                           index only: the search file (vidhash.index.search.file)
    ROOT/.lock                             held by the one writer
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

TABLES = ("meta", "videos", "keyframes", "annotations")
PART_PREFIX = "part-"
IMAGES_DIR = "images"
SEARCH_DIR = "search"
LOCK_NAME = ".lock"
META_FILE = "meta/meta.parquet"
ANNOTATIONS_FILE = "annotations/annotations.parquet"


def part_key(video_path: str) -> str:
    """File-name-safe key of an input path: the same path always maps to the same parts."""
    raw = str(video_path).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:24]


def image_relpath(keyframe_id: str) -> str:
    """A keyframe JPEG's path relative to the root: one folder per content."""
    return f"{IMAGES_DIR}/{keyframe_id[:16]}/{keyframe_id}.jpg"


def is_index(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a vidhash index (it has the meta table)."""
    return (Path(path) / "meta").is_dir()


def parts(directory: Path) -> dict[str, Path]:
    """key -> part file, ignoring temp files (a reader must never see a half-written one)."""
    if not directory.is_dir():
        return {}
    n = len(PART_PREFIX)
    return {
        p.name[n : -len(".parquet")]: p
        for p in directory.iterdir()
        if p.name.startswith(PART_PREFIX) and p.suffix == ".parquet"
    }


def descriptor_dims(meta: dict | None) -> int:
    """The descriptor's dimensions an index's meta records (0: none, codes only)."""
    return int((meta or {}).get("descriptor_dims") or 0)


def describe_model(meta: dict[str, Any]) -> str:
    """``name (sha256 abcdef123456, vidhash 0.1.0)``: which model made an index."""
    version = meta.get("vidhash_version") or "unknown"
    return f"{meta.get('model_name')} (sha256 {str(meta['model_id'])[:12]}, vidhash {version})"


def rebuild_hint(root: str | os.PathLike) -> str:
    return f"rebuild it with: vidhash index INPUT --out {root} --reindex"
