"""Commit records and recovery for a root of per-input Parquet parts (an index or an
extract folder; layout in :mod:`vidhash.index.store.layout`).

Crash safety comes from three rules. Every file is written to a ``.tmp-`` name and renamed,
so no file is ever visible half-written. An input's keyframes part (and its images) are
written *before* its videos part, and its videos part is removed *before* anything else of
it, so the videos part is the commit record: keyframes without one are an interrupted
write, invisible to readers and removed by the next writer. And a writer holds
``ROOT/.lock`` (an advisory lock the kernel releases even after ``kill -9``), so recovery
never races another writer. A rerun therefore redoes exactly the inputs that were not
committed, and ends with the rows of an uninterrupted run.

:meth:`PartStore.check` finds committed inputs whose keyframes part or images are missing
or unreadable: the ingest planner re-processes them, so a rerun heals the damage.

A PartStore keeps every copy of identical content (an extract folder). The duplicate
policy of an index lives in :class:`vidhash.index.store.owners.OwnedParts`, a subclass that
fills the ``_owner_*`` steps of :meth:`PartStore.commit`, :meth:`PartStore.uncommit` and
recovery (no-ops here) through the public methods below, so this module never imports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vidhash.errors import UsageError
from vidhash.fsutil import remove_stale_temps
from vidhash.index.store.codes import as_code_array, code_nbytes
from vidhash.index.store.images import ImageStore
from vidhash.index.store.layout import (
    KINDS,
    LOCK_NAME,
    PART_PREFIX,
    PRIMARY_STATUSES,
    STATUSES,
    VIDEOS_SCHEMA,
    log,
    part_key,
    parts,
    read_parts,
    unlink,
    write_parquet,
)

try:  # POSIX advisory lock; released by the kernel even after kill -9.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class Check:
    """What :meth:`PartStore.check` looked at and what it found damaged (path -> reason)."""

    parts: int = 0
    images: int = 0
    damaged: dict[str, str] = field(default_factory=dict)


class PartStore:
    """One writer's view of a root: committed rows by path, commits, drops and checks."""

    def __init__(self, root: Path, keyframes_schema: pa.Schema | None = None) -> None:
        self.root = Path(root)
        self._schema = keyframes_schema
        self.images = ImageStore(self.root)
        self._lock_fh: Any = None
        self._videos: dict[str, dict[str, Any]] | None = None
        # part files written or removed since the last flush: path -> its input's path
        self._touched: dict[Path, str] = {}
        self._fresh: dict[Path, pa.Table] = {}  # keyframes parts just written, as written

    # ------------------------------------------------------------------ lock and recovery

    def close(self) -> None:
        """Release the writer lock (also released when the process ends)."""
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> PartStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire(self) -> None:
        """Take the writer lock, then repair what an interrupted writer left behind."""
        if self._lock_fh is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock()
        for name in ("videos", "keyframes"):
            (self.root / name).mkdir(exist_ok=True)
        self._recover()
        self._after_recover()

    def lock(self) -> None:
        """Take the writer lock only (no recovery); :class:`UsageError` when it is held."""
        if self._lock_fh is not None:
            return
        fh = open(self.root / LOCK_NAME, "a+")  # noqa: SIM115 - held for the store's life
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise UsageError(
                    f"{self.root} is being written by another process; wait for it to finish"
                ) from None
        self._lock_fh = fh

    def _after_recover(self) -> None:
        """What a subclass keeps in step with the parts once the lock is held (nothing here)."""

    def _recover(self) -> None:
        """Remove temp files, uncommitted keyframes parts, orphan duplicates and images."""
        removed = remove_stale_temps(self.root)
        videos = self._load_videos(repair=True)
        committed = {part_key(p) for p, r in videos.items() if r["status"] in PRIMARY_STATUSES}
        orphans = [p for key, p in parts(self.root / "keyframes").items() if key not in committed]
        for path in orphans:
            self._remove_part(path, "")
        self._owner_recover()
        self.images.gc(self.owned())
        if removed or orphans:
            log.info("%s: removed %d temp files, %d orphan parts", self.root, removed, len(orphans))

    # ------------------------------------------------------------------ committed rows

    def _load_videos(self, repair: bool = False) -> dict[str, dict[str, Any]]:
        found = parts(self.root / "videos")
        table, broken = read_parts(list(found.values()), VIDEOS_SCHEMA)
        for p in broken if repair else ():
            log.warning("removing damaged %s (its input will be processed again)", p)
            self._remove_part(p, "")
            self._remove_part(self.root / "keyframes" / p.name, "")
        self._videos = {
            row["video_path"]: row
            for row in table.to_pylist()
            if part_key(row["video_path"]) in found
        }
        return self._videos

    @property
    def _rows(self) -> dict[str, dict[str, Any]]:
        return self._videos if self._videos is not None else self._load_videos()

    def committed(self) -> dict[str, dict[str, Any]]:
        """video_path -> committed videos row, whatever its status."""
        return dict(self._rows)

    def row(self, path: str) -> dict[str, Any] | None:
        """The committed videos row of one input (None: not committed); not a copy."""
        return self._rows.get(path)

    def done(self) -> dict[str, str]:
        """video_path -> content_hash ('' when unhashable) of every committed input."""
        return {path: row["content_hash"] or "" for path, row in self._rows.items()}

    def owners(self) -> dict[str, str]:
        """content hash -> path of the input that holds its keyframes."""
        return {
            row["content_hash"]: path
            for path, row in self._rows.items()
            if row["status"] in PRIMARY_STATUSES and row["content_hash"]
        }

    def owned(self) -> set[str]:
        """Image folder names (16 hex digits) that some committed input owns."""
        return {h[:16] for h in self.owners()}

    def part(self, table: str, video_path: str) -> Path:
        return self.root / table / f"{PART_PREFIX}{part_key(video_path)}.parquet"

    def write_part(self, table: pa.Table, kind: str, video_path: str) -> None:
        """Write one input's ``videos`` or ``keyframes`` part as it is (no commit rules)."""
        self._write_part(table, self.part(kind, video_path), video_path)

    def remove_part(self, kind: str, video_path: str) -> None:
        """Remove one input's ``videos`` or ``keyframes`` part (no commit rules)."""
        self._remove_part(self.part(kind, video_path), video_path)

    def forget(self, path: str) -> dict[str, Any] | None:
        """Remove an input's commit record (its videos part) only; returns its old row."""
        old = self._rows.pop(path, None)
        if old is not None:
            self._remove_part(self.part("videos", path), path)
        return old

    def _write_part(self, table: pa.Table, path: Path, video_path: str) -> None:
        """Write one part atomically, remembering it for whoever keeps in step (the search
        file)."""
        write_parquet(table, path)
        self._touched[path] = video_path
        if path.parent.name == "keyframes":
            self._fresh[path] = table

    def _remove_part(self, path: Path, video_path: str) -> None:
        unlink(path)
        self._touched[path] = video_path
        self._fresh.pop(path, None)

    # ------------------------------------------------------------------ writing

    def write_image(self, keyframe_id: str, image: bytes | np.ndarray, quality: int = 90) -> str:
        """Write a keyframe JPEG atomically; returns its path relative to the root."""
        return self.images.write(keyframe_id, image, quality)

    def write_row(self, row: dict[str, Any]) -> None:
        """Commit one videos row as it is (its part file is the input's commit record)."""
        self.acquire()
        table = pa.Table.from_pylist([row], schema=VIDEOS_SCHEMA)
        self._write_part(table, self.part("videos", row["video_path"]), row["video_path"])
        self._rows[row["video_path"]] = row

    def commit(self, video_row: dict, keyframes: list[dict] | pa.Table | None = None) -> str:
        """Commit one input: its keyframes part and images, then its videos row; its status.

        ``video_row`` needs video_path and status; video_id defaults to the content hash,
        n_keyframes is counted here. Keyframe dicts need keyframe_id and pts_time (and
        code in an index); video_id, video_path (and code_bits, model_id) are filled in,
        image_path too when the image file exists.
        """
        self.acquire()
        row = self._normalise(video_row)
        path, content = row["video_path"], row["content_hash"]
        owner = self._owner_rival(row)
        if owner is not None and owner < path:
            # Identical bytes are kept once, under the smallest path: the same choice
            # whatever order the inputs finish in, so reruns and resumed runs agree.
            row.update(status="duplicate", error=f"same content as {owner}")
        table = self._keyframes_table(keyframes, row) if row["status"] in PRIMARY_STATUSES else None
        row["n_keyframes"] = 0 if table is None else table.num_rows
        old = self._rows.get(path)
        self.uncommit(path, keep_content=content if table is not None else None)
        displaced = self.forget(owner) if table is not None and owner else None
        if table is not None:
            self._write_part(table, self.part("keyframes", path), path)
            self.images.sync()
        self.write_row(row)
        if table is not None:
            self._owner_claimed(row, displaced)
        owned = self.owned()
        if old is not None and old["content_hash"] != content:
            self.images.gc(owned, old["content_hash"] or "")
        if table is None:
            self.images.gc(owned, content or "")  # JPEGs written for an input that failed
        return row["status"]

    def uncommit(self, path: str, keep_content: str | None = None) -> dict | None:
        """Forget one input (videos part first); returns its old row. Under an owner policy
        a duplicate inherits its keyframes unless the path keeps ``keep_content``."""
        old = self.forget(path)
        kpart = self.part("keyframes", path)
        if old is not None:
            self._owner_leaving(old, kpart, keep_content)
        self._remove_part(kpart, path)
        return old

    # ------------------------------------------------------------------ owner policy steps

    def _owner_rival(self, row: dict[str, Any]) -> str | None:
        """Another path that holds this row's content (None: every copy is kept)."""
        return None

    def _owner_claimed(self, row: dict[str, Any], displaced: dict[str, Any] | None) -> None:
        """After an input's keyframes are committed (``displaced``: the owner it replaced)."""

    def _owner_leaving(self, old: dict[str, Any], kpart: Path, keep: str | None) -> None:
        """Before an uncommitted input's keyframes part is removed."""

    def _owner_recover(self) -> None:
        """Recovery's step for the policy, after uncommitted keyframes parts are removed."""

    def drop_videos(self, paths: Iterable[str]) -> list[str]:
        """Remove the rows (and images) of inputs that no longer exist; returns those dropped."""
        self.acquire()
        dropped = []
        for path in map(str, paths):
            old = self.uncommit(path)
            if old is not None:
                dropped.append(path)
                self.images.gc(self.owned(), old["content_hash"] or "")
        return dropped

    def _normalise(self, video_row: dict) -> dict[str, Any]:
        if "video_path" not in video_row or "status" not in video_row:
            raise ValueError("a videos row needs at least video_path and status")
        row = {name: video_row.get(name) for name in VIDEOS_SCHEMA.names}
        row["video_path"] = str(row["video_path"])
        row["content_hash"] = row["content_hash"] or row["video_id"]
        row["video_id"] = row["video_id"] or row["content_hash"]
        row["kind"] = row["kind"] or "video"
        if row["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row['status']!r}")
        if row["kind"] not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {row['kind']!r}")
        if row["status"] in PRIMARY_STATUSES and not row["content_hash"]:
            raise ValueError(f"{row['video_path']}: an indexed input needs its content_hash")
        if row["error"] is not None:
            row["error"] = " ".join(str(row["error"]).split())  # one line
        return row

    def _fill(self) -> dict[str, Any]:
        """Columns the store fills in for every keyframe (an index adds its model's)."""
        return {}

    def _keyframes_schema(self) -> pa.Schema:
        return self._schema

    def _keyframes_table(self, keyframes: list[dict] | pa.Table | None, row: dict) -> pa.Table:
        """One row per keyframe id (the first of a repeat), in time order: what search
        relies on. Store-wide columns are filled in; codes are checked for their width."""
        if isinstance(keyframes, pa.Table):
            keyframes = keyframes.to_pylist()
        fill = {"video_id": row["video_id"], "video_path": row["video_path"], **self._fill()}
        unique: dict[str, dict] = {}
        for kf in keyframes or []:
            kid = kf["keyframe_id"]
            image = kf.get("image_path") or self.images.existing(kid)
            unique.setdefault(kid, {**kf, **fill, "image_path": image})
        rows = sorted(unique.values(), key=lambda r: (r["pts_time"], r["keyframe_id"]))
        if "code_bits" in fill:
            nbytes = code_nbytes(int(fill["code_bits"]))
            for r in rows:
                r["code"] = _code_bytes(r.get("code"), nbytes)
        schema = self._keyframes_schema()
        if "descriptor" in schema.names:
            width = schema.field("descriptor").type.byte_width
            for r in rows:
                if len(r.get("descriptor") or b"") != width:
                    raise ValueError(
                        f"keyframe {r['keyframe_id']}: this index stores a {width // 2}-d "
                        "float16 descriptor per keyframe beside its code"
                    )
        return pa.Table.from_pylist(rows, schema=schema)

    # ------------------------------------------------------------------ reading and checks

    def read_arrow(self, name: str) -> pa.Table:
        """``videos`` or ``keyframes`` as Arrow; keyframes only of committed inputs."""
        videos = self._load_videos() if self._lock_fh is None else self._rows
        if name == "videos":
            rows = sorted(videos.values(), key=lambda r: r["video_path"])
            return pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
        committed = {part_key(p) for p, r in videos.items() if r["status"] in PRIMARY_STATUSES}
        kparts = parts(self.root / "keyframes")
        # only committed inputs: a part without its videos row is being written right now
        paths = [p for key, p in sorted(kparts.items()) if key in committed]
        return read_parts(paths, self._keyframes_schema())[0]

    def check(self, full: bool = False) -> Check:
        """Committed inputs whose keyframes part or images are missing or unreadable.

        Quick (every run): each part's (video_path, image_path) columns are read and every
        named image must exist. ``full``: every part is read whole and every image decoded.
        """
        found = Check()
        primary = {p: r for p, r in self._rows.items() if r["status"] in PRIMARY_STATUSES}
        kparts = parts(self.root / "keyframes")
        paths = {p: kparts.get(part_key(p)) for p in primary}
        for path, part in paths.items():
            if part is None:
                found.damaged[path] = "keyframes part missing"
        readable = [p for p in paths.values() if p is not None]
        columns = None if full else ["video_path", "image_path"]
        table, broken = read_parts(readable, self._keyframes_schema(), columns)
        found.parts = len(readable)
        by_part = {part: path for path, part in paths.items()}
        for part in broken:
            found.damaged[by_part[part]] = "keyframes part unreadable"
        rows = table.select(["video_path", "image_path"]).to_pylist()
        counts = Counter(kf["video_path"] for kf in rows)
        for path, row in primary.items():
            if path not in found.damaged and counts.get(path, 0) != row["n_keyframes"]:
                found.damaged[path] = "keyframes part does not match its videos row"
        images = {kf["image_path"]: kf["video_path"] for kf in rows if kf["image_path"]}
        found.images = len(images)
        for rel in sorted(self.images.missing(images, decode=full)):
            found.damaged.setdefault(images[rel], f"image {rel} missing or unreadable")
        return found


def _code_bytes(code: Any, nbytes: int) -> bytes:
    if code is None:
        raise ValueError("keyframes need a code column")
    return as_code_array(code, nbytes)[0].tobytes()
