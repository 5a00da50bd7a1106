"""File-system helpers shared by every stage: atomic writes and content hashes.

Atomicity is by write-to-temp-then-rename in the same directory, so a crash (even
``kill -9``) never leaves a partial file under its final name. Temp files carry the
``.tmp-`` prefix so readers and resumes can ignore and clean them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
_HASH_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``final``; on success fsync and rename it into place.

    ``fsync=False`` keeps the rename atomic but leaves durability to one later
    :func:`sync_files` (many small files: one fsync each costs more than writing them).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=final.suffix, dir=final.parent)
    # mkstemp makes files owner-only (0600); give the result the permissions a plain
    # open() would, so an index or report is readable as the user's umask intends.
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _read_umask() -> int:
    """The process umask, read once at import (os.umask is a set-and-restore, not thread-safe)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(final: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def sync_files(folder: str | os.PathLike, paths: list[Path]) -> None:
    """Make files written with ``fsync=False`` durable: one syncfs (Linux), else fsync each."""
    if not paths:
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        fd = os.open(folder, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temps(directory: str | os.PathLike) -> int:
    """Delete temp files left by an interrupted run; returns how many were removed."""
    removed = 0
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    for p in directory.rglob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            p.unlink()
            removed += 1
    return removed


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes, hex. Streams, so memory stays flat for any size."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def keyframe_id(video_hash: str, pts_time: float) -> str:
    """Stable keyframe id from the video's content hash and the frame's timestamp.

    Millisecond resolution: reruns, Ray workers and resumed runs agree on it.
    """
    return f"{video_hash[:16]}-{round(pts_time * 1000):09d}"


def cache_home() -> Path:
    """vidhash's cache folder: ``$VIDHASH_CACHE``, else ``~/.cache/vidhash``."""
    return Path(os.environ.get("VIDHASH_CACHE") or "~/.cache/vidhash").expanduser()
