"""The index on disk: a directory of Parquet tables that pandas, pyarrow and DuckDB read as is.

Layout (documented column by column in ``docs/SCHEMA.md``)::

    INDEX/meta/meta.parquet                 one row: the model that made the codes
    INDEX/videos/part-<key>.parquet         one row per input (video or image), any status
    INDEX/keyframes/part-<key>.parquet      the keyframes of one input, with their codes
    INDEX/annotations/annotations.parquet   concept labels (``vidhash annotate``)
    INDEX/images/<hash16>/<keyframe_id>.jpg keyframe JPEGs (unless --no-images)

Crash safety comes from three rules. Every file is written to a ``.tmp-`` name and renamed
(``vidhash.fsutil.atomic_path``), so no file is ever visible half-written. An input's
keyframes part is written *before* its videos part, and its videos part is removed *before*
anything else of it, so the videos part is the commit record: keyframes without one are
an interrupted write, invisible to readers and removed by the next writer. And a writer
holds ``INDEX/.lock``, so recovery never races another writer. A rerun after ``kill -9``
therefore redoes exactly the inputs that were not committed, and ends with the rows of an
uninterrupted run.

Identical content at several paths is indexed once: keyframe ids derive from the content
hash, so only the smallest path keeps keyframes and the others are ``duplicate`` rows
(the same outcome whatever order inputs finish in). If the owner goes away, the next
copy inherits its keyframes (no re-encoding needed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vidhash.errors import IndexMissingError, ModelMismatchError, UsageError
from vidhash.fsutil import TMP_PREFIX, atomic_path, remove_stale_temps
from vidhash.index.codes import as_code_array, code_nbytes, codes_to_arrow

try:  # POSIX advisory lock; released by the kernel even after kill -9.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TABLES = ("meta", "videos", "keyframes", "annotations")
STATUSES = ("ok", "partial", "failed", "skipped", "duplicate")
KINDS = ("video", "image")
# Inputs whose keyframes live in the index (and so own their content hash).
PRIMARY_STATUSES = frozenset({"ok", "partial"})
PART_PREFIX = "part-"
IMAGES_DIR = "images"
LOCK_NAME = ".lock"

META_SCHEMA = pa.schema(
    [
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string()),
        pa.field("model_config", pa.string()),
        pa.field("code_bits", pa.int16(), nullable=False),
        pa.field("vidhash_version", pa.string()),
        pa.field("created", pa.timestamp("ms", tz="UTC")),
    ]
)

VIDEOS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("content_hash", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("duration", pa.float64()),
        pa.field("n_keyframes", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        # The sampling options the keyframes were made with (JSON); other options reindex.
        pa.field("sampling", pa.string()),
    ]
)

ANNOTATIONS_SCHEMA = pa.schema(
    [
        pa.field("keyframe_id", pa.string(), nullable=False),
        pa.field("concept", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
    ]
)


def keyframes_schema(code_bits: int) -> pa.Schema:
    """The keyframes table's schema; the code column is exactly ``ceil(L/8)`` bytes wide."""
    return pa.schema(
        [
            pa.field("keyframe_id", pa.string(), nullable=False),
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("video_path", pa.string(), nullable=False),
            pa.field("pts_time", pa.float64(), nullable=False),
            pa.field("frame_index", pa.int64()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("rotation", pa.int16()),
            pa.field("code", pa.binary(code_nbytes(code_bits)), nullable=False),
            pa.field("code_bits", pa.int16(), nullable=False),
            pa.field("model_id", pa.string(), nullable=False),
            pa.field("image_path", pa.string()),
        ]
    )


def part_key(video_path: str) -> str:
    """File-name-safe key of an input path: the same path always maps to the same parts."""
    raw = video_path.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:24]


def is_index(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a vidhash index (it has the meta table)."""
    return (Path(path) / "meta").is_dir()


def _read_parquet(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    table = pq.read_table(path)
    return table.cast(schema) if schema is not None else table


def _read_parts(paths: list[Path], schema: pa.Schema) -> pa.Table:
    """Read many part files as one table: one multi-threaded scan, per file on trouble.

    A file deleted since it was listed (an input dropped or redone meanwhile) is skipped,
    and so is a damaged one (with a warning), so readers never fail on a concurrent writer.
    """
    if not paths:
        return _empty(schema)
    try:
        return ds.dataset([str(p) for p in paths], schema=schema, format="parquet").to_table()
    except (pa.ArrowException, OSError):
        pass
    tables = []
    for p in paths:
        try:
            tables.append(_read_parquet(p, schema))
        except FileNotFoundError:
            continue
        except (pa.ArrowException, OSError) as exc:
            log.warning("skipping unreadable %s: %s", p, exc)
    return pa.concat_tables(tables) if tables else _empty(schema)


def _write_parquet(table: pa.Table, final: Path) -> None:
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _parts(directory: Path) -> dict[str, Path]:
    """key -> part file, ignoring temp files (a reader must never see a half-written one)."""
    if not directory.is_dir():
        return {}
    out = {}
    for p in directory.iterdir():
        if p.name.startswith(PART_PREFIX) and p.suffix == ".parquet":
            out[p.name[len(PART_PREFIX) : -len(".parquet")]] = p
    return out


def _check_model(root: Path, existing: dict | None, model_meta: dict) -> None:
    if existing is not None and existing["model_id"] != model_meta["model_id"]:
        raise ModelMismatchError(
            f"index {root} was built with model {existing['model_id'][:16]} "
            f"({existing.get('model_name')}), not {model_meta['model_id'][:16]} "
            f"({model_meta.get('model_name')}); pass --reindex to rebuild it"
        )


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


class IndexStore:
    """Reads and writes one index directory. Open with :meth:`open`.

    A store opened with ``model_meta``, ``create`` or ``reindex`` is the *writer*: it takes
    ``INDEX/.lock`` at once and cleans up after any interrupted run. A store opened with
    none of them only reads, and takes the lock lazily if one of its write methods is
    called (``vidhash annotate`` does that).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fh: Any = None
        self._videos: dict[str, dict[str, Any]] | None = None
        self._meta: dict[str, Any] | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        model_meta: dict | None = None,
        reindex: bool = False,
        create: bool = False,
    ) -> IndexStore:
        """Open (or with ``create`` make) an index; check or record the model.

        ``model_meta`` has model_id, model_name, model_config, code_bits. A model_id other
        than the index's raises :class:`ModelMismatchError`, unless ``reindex``, which
        removes every keyframe, video row and image (annotations are kept: they label
        frames, not codes) and records the new model.
        """
        root = Path(path)
        exists = is_index(root)
        if not exists and not create:
            if root.exists() and not root.is_dir():
                raise IndexMissingError(f"{root} is a file, not an index directory")
            raise IndexMissingError(f"no vidhash index at {root}")
        if (
            not exists
            and root.is_dir()
            and any(
                p.name not in (*TABLES, IMAGES_DIR, LOCK_NAME) and not p.name.startswith(".")
                for p in root.iterdir()
            )
        ):
            raise UsageError(f"{root} is a non-empty folder that is not a vidhash index")
        store = cls(root)
        if model_meta is None and not create and not reindex:
            return store
        if exists and model_meta is not None and not reindex:
            _check_model(root, store.meta, model_meta)  # before the lock: a refusal changes nothing
        root.mkdir(parents=True, exist_ok=True)
        store._acquire_writer()
        try:
            store._meta = None
            existing = store.meta
            if model_meta is not None and not reindex:
                _check_model(root, existing, model_meta)  # again, now that we hold the lock
            if reindex and existing is not None:
                store._wipe_rows()
            if model_meta is not None and (existing is None or reindex):
                store._write_meta(model_meta)
            (root / "meta").mkdir(exist_ok=True)
            for name in ("videos", "keyframes"):
                (root / name).mkdir(exist_ok=True)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release the writer lock (also released when the process ends)."""
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire_writer(self) -> None:
        """Take the writer lock, then repair what an interrupted writer left behind."""
        if self._lock_fh is not None:
            return
        fh = open(self.root / LOCK_NAME, "a+")  # noqa: SIM115 - held for the store's life
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise UsageError(
                    f"index {self.root} is being written by another process; wait for it to finish"
                ) from None
        self._lock_fh = fh
        self._recover()

    def _recover(self) -> None:
        """Remove temp files, uncommitted keyframe parts, orphan duplicates and images."""
        removed = remove_stale_temps(self.root)
        videos = self._load_videos(repair=True)
        vparts = _parts(self.root / "videos")
        kparts = _parts(self.root / "keyframes")
        committed = {part_key(p) for p, row in videos.items() if row["status"] in PRIMARY_STATUSES}
        orphans = 0
        for key, kpath in kparts.items():
            if key not in committed:
                _unlink(kpath)
                orphans += 1
        # A primary row whose keyframes part vanished cannot be served: redo it.
        for path, row in list(videos.items()):
            key = part_key(path)
            if row["status"] in PRIMARY_STATUSES and key not in kparts:
                _unlink(vparts[key])
                del videos[path]
        owners = self._owners()
        for path, row in list(videos.items()):
            if row["status"] == "duplicate" and row["content_hash"] not in owners:
                _unlink(vparts[part_key(path)])
                del videos[path]
        self._gc_images(None)
        if removed or orphans:
            log.info(
                "index %s: removed %d temp files, %d orphan parts", self.root, removed, orphans
            )

    # ------------------------------------------------------------------ meta

    @property
    def meta(self) -> dict[str, Any] | None:
        """The model the codes were made with (a dict), or None for a fresh index."""
        if self._meta is None:
            path = self.root / "meta" / "meta.parquet"
            if not path.is_file():
                return None
            rows = _read_parquet(path).to_pylist()
            if not rows:
                return None
            self._meta = rows[0]
        return self._meta

    @property
    def code_bits(self) -> int:
        meta = self.meta
        if meta is None:
            raise IndexMissingError(f"index {self.root} has no model recorded yet")
        return int(meta["code_bits"])

    def _write_meta(self, model_meta: dict) -> None:
        from vidhash import __version__

        config = model_meta.get("model_config")
        if not isinstance(config, str):
            config = json.dumps(config if config is not None else {}, sort_keys=True)
        row = {
            "model_id": str(model_meta["model_id"]),
            "model_name": model_meta.get("model_name"),
            "model_config": config,
            "code_bits": int(model_meta["code_bits"]),
            "vidhash_version": __version__,
            "created": dt.datetime.now(dt.UTC),
        }
        _write_parquet(
            pa.Table.from_pylist([row], schema=META_SCHEMA), self.root / "meta" / "meta.parquet"
        )
        self._meta = None

    def _wipe_rows(self) -> None:
        """Drop every video, keyframe and image; videos first, so a crash leaves no orphan."""
        for name in ("videos", "keyframes"):
            for p in _parts(self.root / name).values():
                _unlink(p)
        shutil.rmtree(self.root / IMAGES_DIR, ignore_errors=True)
        self._videos = {}

    # ------------------------------------------------------------------ videos state

    def _load_videos(self, repair: bool = False) -> dict[str, dict[str, Any]]:
        parts = _parts(self.root / "videos")
        videos: dict[str, dict[str, Any]] = {}
        try:
            paths = [str(p) for p in parts.values()]
            rows = ds.dataset(paths, schema=VIDEOS_SCHEMA, format="parquet").to_table()
            rows = rows.to_pylist() if paths else []
        except (pa.ArrowException, OSError):
            rows = self._load_videos_one_by_one(parts, repair)
        for row in rows:
            if part_key(row["video_path"]) in parts:
                videos[row["video_path"]] = row
        self._videos = videos
        return videos

    def _load_videos_one_by_one(self, parts: dict[str, Path], repair: bool) -> list[dict]:
        """Slow path: find the vanished or damaged part (a writer removes damaged ones)."""
        rows: list[dict] = []
        for p in parts.values():
            try:
                rows += _read_parquet(p, VIDEOS_SCHEMA).to_pylist()
            except FileNotFoundError:
                continue  # dropped while we listed
            except (pa.ArrowException, OSError) as exc:
                if not repair:
                    log.warning("skipping unreadable %s: %s", p, exc)
                    continue
                log.warning("removing damaged %s (its input will be indexed again): %s", p, exc)
                _unlink(p)
                _unlink(self.root / "keyframes" / p.name)
        return rows

    @property
    def _rows(self) -> dict[str, dict[str, Any]]:
        return self._videos if self._videos is not None else self._load_videos()

    def _owners(self) -> dict[str, str]:
        """content hash -> path of the input that holds its keyframes."""
        return {
            row["content_hash"]: path
            for path, row in self._rows.items()
            if row["status"] in PRIMARY_STATUSES and row["content_hash"]
        }

    def done(self) -> dict[str, str]:
        """video_path -> content_hash ('' when unhashable) of every committed input.

        Includes failed, skipped and duplicate inputs: the pipeline decides whether to
        retry them. Call again after :meth:`drop_videos`, which may promote duplicates.
        """
        return {path: row["content_hash"] or "" for path, row in self._rows.items()}

    def video(self, video_path: str) -> dict[str, Any] | None:
        """The committed videos row of one input, or None."""
        return self._rows.get(video_path)

    def owner_of(self, content_hash: str) -> str | None:
        """Path already holding this content's keyframes (lets a pipeline skip decoding)."""
        return self._owners().get(content_hash)

    # ------------------------------------------------------------------ writing

    def write_video(self, video_row: dict, keyframes: list[dict] | pa.Table | None = None) -> str:
        """Commit one input: its keyframes part, then its videos row. Returns the status.

        ``video_row`` needs video_path and status; content_hash, size_bytes, mtime,
        duration, kind ('video' default) and error are optional; video_id defaults to the
        content hash and n_keyframes is counted here. Keyframe dicts need keyframe_id,
        pts_time and code (bytes or uint8 array); video_id, video_path, code_bits and
        model_id are filled in, and image_path too when :meth:`write_image` made the file.
        Content already indexed under another path is recorded as ``duplicate``.
        """
        self._acquire_writer()
        meta = self.meta
        if meta is None:
            raise UsageError(f"index {self.root} has no model recorded; open it with model_meta")
        row = self._normalise_video_row(video_row)
        path = row["video_path"]
        content = row["content_hash"]
        owner = None
        if row["status"] in PRIMARY_STATUSES and content:
            owner = self.owner_of(content)
            owner = None if owner == path else owner
        if row["status"] not in PRIMARY_STATUSES:
            table = None
        elif owner is not None and owner < path:
            # Identical bytes are indexed once, under the smallest path: the same choice
            # whatever order the inputs finish in, so reruns and resumed runs agree.
            row.update(status="duplicate", error=f"same content as {owner}")
            table = None
        else:
            table = self._keyframes_table(keyframes, row, meta)
        row["n_keyframes"] = 0 if table is None else table.num_rows

        old = self._rows.get(path)
        self._remove(path, keep_content=content if table is not None else None)
        displaced = None
        if table is not None and owner is not None:
            # This path sorts before the current owner: uncommit the owner first, so two
            # inputs never both hold these keyframe ids, then demote it below.
            displaced = self._rows.pop(owner)
            _unlink(self._part("videos", owner))
        if table is not None:
            _write_parquet(table, self._part("keyframes", path))
        self._write_row(row)
        if displaced is not None:
            displaced.update(status="duplicate", error=f"same content as {path}", n_keyframes=0)
            self._write_row(displaced)
            _unlink(self._part("keyframes", owner))
        if table is not None:
            self._retarget_duplicates(content, path)
        if old is not None and old["content_hash"] != content:
            self._gc_images(old["content_hash"])
        if table is None and content:
            self._gc_images(content)  # JPEGs written for an input that failed
        return row["status"]

    def _part(self, table: str, video_path: str) -> Path:
        return self.root / table / f"{PART_PREFIX}{part_key(video_path)}.parquet"

    def _write_row(self, row: dict[str, Any]) -> None:
        """Commit one videos row (its part file is the input's commit record)."""
        _write_parquet(
            pa.Table.from_pylist([row], schema=VIDEOS_SCHEMA),
            self._part("videos", row["video_path"]),
        )
        self._rows[row["video_path"]] = row

    def _retarget_duplicates(self, content: str, owner: str) -> None:
        """Duplicates name the current owner, as they would had it been indexed first."""
        expected = f"same content as {owner}"
        for row in list(self._rows.values()):
            if (
                row["status"] == "duplicate"
                and row["content_hash"] == content
                and row["error"] != expected
            ):
                self._write_row({**row, "error": expected})

    def _normalise_video_row(self, video_row: dict) -> dict[str, Any]:
        if "video_path" not in video_row or "status" not in video_row:
            raise ValueError("a videos row needs at least video_path and status")
        row = {name: video_row.get(name) for name in VIDEOS_SCHEMA.names}
        row["video_path"] = str(row["video_path"])
        if row["content_hash"] is None:
            row["content_hash"] = row["video_id"]
        if row["video_id"] is None:
            row["video_id"] = row["content_hash"]
        row["kind"] = row["kind"] or "video"
        if row["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row['status']!r}")
        if row["kind"] not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {row['kind']!r}")
        if row["status"] in PRIMARY_STATUSES and not row["content_hash"]:
            raise ValueError(f"{row['video_path']}: an indexed input needs its content_hash")
        if row["error"] is not None:
            row["error"] = " ".join(str(row["error"]).split())  # one line
        if row["mtime"] is not None and isinstance(row["mtime"], dt.datetime):
            row["mtime"] = row["mtime"].timestamp()
        return row

    def _keyframes_table(
        self, keyframes: list[dict] | pa.Table | None, row: dict, meta: dict
    ) -> pa.Table:
        code_bits = int(meta["code_bits"])
        schema = keyframes_schema(code_bits)
        nbytes = code_nbytes(code_bits)
        if keyframes is None:
            columns: dict[str, list] = {name: [] for name in schema.names}
        elif isinstance(keyframes, pa.Table):
            columns = {
                name: keyframes.column(name).to_pylist() if name in keyframes.column_names else None
                for name in schema.names
            }
            columns["code"] = (
                [bytes(c) for c in keyframes.column("code").to_pylist()]
                if "code" in keyframes.column_names
                else []
            )
        else:
            columns = {name: [kf.get(name) for kf in keyframes] for name in schema.names}
        n = len(columns["keyframe_id"] or [])
        if n and not columns["code"]:
            raise ValueError("keyframes need a code column")
        codes = (
            as_code_array(np.stack([as_code_array(c, nbytes)[0] for c in columns["code"]]), nbytes)
            if n
            else np.zeros((0, nbytes), np.uint8)
        )
        fill = {
            "video_id": row["video_id"],
            "video_path": row["video_path"],
            "code_bits": code_bits,
            "model_id": meta["model_id"],
        }
        arrays = []
        for field in schema:
            if field.name == "code":
                arrays.append(codes_to_arrow(codes))
                continue
            values = columns.get(field.name)
            if field.name in fill:
                values = [fill[field.name]] * n
            elif values is None:
                values = [None] * n
            if field.name == "image_path":
                values = [
                    v if v is not None else self._existing_image(kid)
                    for v, kid in zip(values, columns["keyframe_id"], strict=True)
                ]
            arrays.append(pa.array(values, type=field.type))
        table = pa.Table.from_arrays(arrays, schema=schema)
        if n:
            # One row per keyframe id, in time order: the invariant search relies on.
            ids = table.column("keyframe_id").to_pylist()
            first = {kid: i for i, kid in reversed(list(enumerate(ids)))}
            if len(first) != n:
                table = table.take(sorted(first.values()))
            table = table.sort_by([("pts_time", "ascending"), ("keyframe_id", "ascending")])
        return table

    def _remove(self, path: str, keep_content: str | None = None) -> bool:
        """Uncommit one input (videos part first). Hands its keyframes to a duplicate.

        ``keep_content``: the content the same path is about to be rewritten with; its
        duplicates then stay duplicates of this path.
        """
        old = self._rows.get(path)
        key = part_key(path)
        vpart = self.root / "videos" / f"{PART_PREFIX}{key}.parquet"
        kpart = self.root / "keyframes" / f"{PART_PREFIX}{key}.parquet"
        if old is None:
            _unlink(kpart)
            return False
        _unlink(vpart)
        del self._rows[path]
        content = old["content_hash"]
        if old["status"] in PRIMARY_STATUSES and content and content != keep_content:
            heirs = sorted(
                p
                for p, r in self._rows.items()
                if r["status"] == "duplicate" and r["content_hash"] == content
            )
            if heirs and kpart.is_file():
                self._promote(heirs[0], kpart, old)
        _unlink(kpart)
        return True

    def _promote(self, heir: str, old_kpart: Path, old_row: dict) -> None:
        """Make a duplicate the owner of its content: copy the keyframes under its path."""
        table = _read_parquet(old_kpart)
        idx = table.schema.get_field_index("video_path")
        table = table.set_column(
            idx, table.schema.field(idx), pa.array([heir] * table.num_rows, pa.string())
        )
        _write_parquet(table, self._part("keyframes", heir))
        row = dict(self._rows[heir])
        row.update(
            status=old_row["status"],
            error=old_row["error"],
            n_keyframes=table.num_rows,
            duration=old_row["duration"],
        )
        self._write_row(row)
        self._retarget_duplicates(row["content_hash"], heir)

    def drop_videos(self, paths: Iterable[str]) -> list[str]:
        """Remove the rows (and images) of inputs that no longer exist; returns those dropped.

        A duplicate of a dropped input takes over its keyframes, so no content is lost.
        """
        self._acquire_writer()
        dropped = []
        for path in paths:
            old = self._rows.get(str(path))
            if self._remove(str(path)):
                dropped.append(str(path))
                self._gc_images(old["content_hash"])
        return dropped

    # ------------------------------------------------------------------ images

    def image_path_for(self, keyframe_id: str) -> Path:
        """Where a keyframe's JPEG lives: one folder per content, so drops are one rmtree."""
        return self.root / IMAGES_DIR / keyframe_id[:16] / f"{keyframe_id}.jpg"

    def write_image(self, keyframe_id: str, rgb_uint8: np.ndarray, quality: int = 90) -> str:
        """Write a keyframe JPEG atomically; returns its path relative to the index."""
        from PIL import Image

        final = self.image_path_for(keyframe_id)
        with atomic_path(final) as tmp:
            Image.fromarray(np.ascontiguousarray(rgb_uint8)).save(
                tmp, format="JPEG", quality=quality
            )
        return final.relative_to(self.root).as_posix()

    def _existing_image(self, keyframe_id: str | None) -> str | None:
        if keyframe_id is None:
            return None
        p = self.image_path_for(keyframe_id)
        return p.relative_to(self.root).as_posix() if p.is_file() else None

    def _gc_images(self, content_hash: str | None) -> None:
        """Delete image folders no committed input owns (one content, or all when None)."""
        images = self.root / IMAGES_DIR
        if not images.is_dir():
            return
        owned = {h[:16] for h in self._owners()}
        if content_hash is not None:
            if content_hash and content_hash[:16] not in owned:
                shutil.rmtree(images / content_hash[:16], ignore_errors=True)
            return
        for d in images.iterdir():
            if d.is_dir() and d.name not in owned:
                shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ annotations

    def write_annotations(self, table: pd.DataFrame | pa.Table) -> None:
        """Replace the annotations table atomically (all rows or none)."""
        self._acquire_writer()
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table[ANNOTATIONS_SCHEMA.names], preserve_index=False)
        table = table.select(ANNOTATIONS_SCHEMA.names).cast(ANNOTATIONS_SCHEMA)
        _write_parquet(table, self.root / "annotations" / "annotations.parquet")

    # ------------------------------------------------------------------ reading

    def read_arrow(self, name: str) -> pa.Table:
        """One table as Arrow. Keyframes are read only for committed inputs."""
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; tables are {TABLES}")
        if name == "meta":
            meta = self.meta
            return pa.Table.from_pylist([meta] if meta else [], schema=META_SCHEMA)
        if name == "annotations":
            path = self.root / "annotations" / "annotations.parquet"
            return (
                _read_parquet(path, ANNOTATIONS_SCHEMA)
                if path.is_file()
                else _empty(ANNOTATIONS_SCHEMA)
            )
        videos = self._load_videos() if self._lock_fh is None else self._rows
        if name == "videos":
            rows = sorted(videos.values(), key=lambda r: r["video_path"])
            return pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
        schema = keyframes_schema(self.code_bits)
        committed = {part_key(p) for p, r in videos.items() if r["status"] in PRIMARY_STATUSES}
        kparts = _parts(self.root / "keyframes")
        # only committed inputs: a part without its videos row is being written right now
        return _read_parts([p for key, p in sorted(kparts.items()) if key in committed], schema)

    def read_table(self, name: str) -> pd.DataFrame:
        """One table as pandas (the code column holds ``bytes``)."""
        return self.read_arrow(name).to_pandas()


def remove_temp_files(root: str | os.PathLike) -> int:
    """Remove ``.tmp-*`` leftovers in an index (exposed for tools; the writer does it)."""
    return remove_stale_temps(root)


__all__ = [
    "ANNOTATIONS_SCHEMA",
    "META_SCHEMA",
    "STATUSES",
    "TMP_PREFIX",
    "VIDEOS_SCHEMA",
    "IndexStore",
    "is_index",
    "keyframes_schema",
    "part_key",
]
