"""Keyframe JPEG storage: ``ROOT/images/<hash16>/<keyframe_id>.jpg``, one folder per content.

A folder per content hash makes dropping an input one ``rmtree`` and lets the store keep
exactly the folders some committed input owns. JPEG bytes come from the one encoder
(:func:`vidhash.media.encode_jpeg`), so local threads and Ray workers store the same bytes.
Files are renamed into place atomically but not fsynced one by one: :meth:`ImageStore.sync`
makes an input's images durable with one call before its commit record is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vidhash.fsutil import atomic_write_bytes, sync_files
from vidhash.index.store.layout import IMAGES_DIR, image_relpath
from vidhash.media import JPEG_QUALITY, encode_jpeg, read_rgb


class ImageStore:
    """The images folder of one root (an index or an extract folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / IMAGES_DIR
        self._unsynced: list[Path] = []

    def path_for(self, keyframe_id: str) -> Path:
        return self.root / image_relpath(keyframe_id)

    def write(
        self, keyframe_id: str, image: bytes | np.ndarray, quality: int = JPEG_QUALITY
    ) -> str:
        """Store a keyframe's JPEG (bytes, or RGB pixels to encode); its relative path."""
        data = image if isinstance(image, bytes) else encode_jpeg(image, quality)
        final = self.path_for(keyframe_id)
        atomic_write_bytes(final, data, fsync=False)
        self._unsynced.append(final)
        return image_relpath(keyframe_id)

    def sync(self) -> None:
        """Make every image written so far durable (before a commit record names them)."""
        pending, self._unsynced = self._unsynced, []
        sync_files(self.root, [p for p in pending if p.exists()])

    def existing(self, keyframe_id: str | None) -> str | None:
        """The relative path of a keyframe's JPEG when the file is there."""
        if keyframe_id is None or not self.path_for(keyframe_id).is_file():
            return None
        return image_relpath(keyframe_id)

    def gc(self, owned: set[str], content_hash: str | None = None) -> None:
        """Delete image folders no committed input owns (one content, or all when None).

        ``owned`` holds the 16-digit folder names of the contents that have keyframes.
        """
        if not self.folder.is_dir():
            return
        if content_hash is not None:
            if content_hash and content_hash[:16] not in owned:
                shutil.rmtree(self.folder / content_hash[:16], ignore_errors=True)
            return
        for d in self.folder.iterdir():
            if d.is_dir() and d.name not in owned:
                shutil.rmtree(d, ignore_errors=True)

    def missing(self, relpaths: Iterable[str], decode: bool = False) -> set[str]:
        """Which of these relative paths have no file (or, with ``decode``, no readable JPEG).

        Lists each content folder once instead of stating every file.
        """
        listed: dict[str, set[str]] = {}
        bad = set()
        for rel in relpaths:
            folder, _, name = rel.rpartition("/")
            if folder not in listed:
                path = self.root / folder
                listed[folder] = {p.name for p in path.iterdir()} if path.is_dir() else set()
            if name not in listed[folder] or (decode and not _decodes(self.root / rel)):
                bad.add(rel)
        return bad


def _decodes(path: Path) -> bool:
    try:
        read_rgb(path)
    except Exception:  # noqa: BLE001 - any failure means the file is damaged
        return False
    return True
