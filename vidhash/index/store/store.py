"""The index on disk: a directory of Parquet tables that pandas, pyarrow and DuckDB read as is.

``IndexTables`` is the index's tables, written and read. It adds to the per-input parts of
:class:`~vidhash.index.store.parts.PartStore` (commit records, recovery, checks) what makes
them an index: the model that made the codes (``meta``), the code columns, the duplicate
policy (:class:`~vidhash.index.store.owners.OwnedParts`) and the annotations table. Layout
and schemas: :mod:`vidhash.index.store.layout` and docs/SCHEMA.md.

A store opened with ``model_meta``, ``create`` or ``reindex`` is the *writer*: it takes
``INDEX/.lock`` at once and cleans up after any interrupted run. A store opened with none
of them only reads, and takes the lock lazily if one of its write methods is called
(``vidhash annotate`` does that). A model other than the index's is refused in one line
that names the index's model and how to rebuild it.

**Keepers.** A file derived from the tables (the search file) follows their commits
through a :class:`Keeper` that :meth:`IndexTables.new_keeper` makes once the writer lock is
held and the model is known: ``sync()`` then, and ``update(touched, fresh)`` after each
outermost successful write (the part files it wrote or removed, each with its input's path,
and the keyframes tables just written). Here there is none; the index writer
:class:`vidhash.index.search.writer.IndexStore` returns the search file's writer, so this
room never imports the search room. A failed write skips ``update``: the keeper's file is
then stale, and whoever reads it repairs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self

import pandas as pd
import pyarrow as pa

from vidhash.errors import IndexMissingError, ModelMismatchError, UsageError
from vidhash.index.store.layout import (
    ANNOTATIONS_SCHEMA,
    IMAGES_DIR,
    LOCK_NAME,
    META_SCHEMA,
    SEARCH_DIR,
    TABLES,
    is_index,
    keyframes_schema,
    parts,
    read_parquet,
    unlink,
    write_parquet,
)
from vidhash.index.store.owners import OwnedParts
from vidhash.index.store.paths import describe_model, descriptor_dims, rebuild_hint


class Keeper(Protocol):
    """What keeps a file derived from the tables in step with their commits."""

    def sync(self) -> None:
        """Reconcile with the tables as they are (the writer's start, a new model)."""

    def update(self, touched: dict[Path, str], fresh: dict[Path, pa.Table]) -> None:
        """After a write: part files touched (-> their input's path), keyframes written."""


class IndexTables(OwnedParts):
    """Reads and writes one index directory's tables. Open with :meth:`open`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)  # the keyframes schema follows the meta
        self._meta: dict[str, Any] | None = None
        self._keeper: Keeper | None = None
        self._depth = 0  # nested write calls: the keeper is updated when the outer one ends

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        model_meta: dict | None = None,
        reindex: bool = False,
        create: bool = False,
    ) -> Self:
        """Open (or with ``create`` make) an index; check or record the model.

        ``model_meta`` has model_id, model_name, model_config, code_bits (and optionally
        vidhash_version). A model_id other than the index's raises
        :class:`ModelMismatchError`, unless ``reindex``, which removes every keyframe,
        video row and image (annotations are kept: they label frames, not codes) and
        records the new model.
        """
        root = Path(path)
        exists = is_index(root)
        if not exists and not create:
            if root.exists() and not root.is_dir():
                raise IndexMissingError(f"{root} is a file, not an index directory")
            raise IndexMissingError(f"no vidhash index at {root}")
        if not exists and root.is_dir() and (parts(root / "videos") or _foreign(root)):
            raise UsageError(f"{root} is a non-empty folder that is not a vidhash index")
        store = cls(root)
        if model_meta is None and not create and not reindex:
            return store
        if exists and model_meta is not None and not reindex:
            store._check_model(model_meta)  # before the lock: a refusal changes nothing
        store.acquire()
        try:
            store._meta = None
            existing = store.meta
            if model_meta is not None and not reindex:
                store._check_model(model_meta)  # again, now that we hold the lock
            if reindex and existing is not None:
                store._wipe_rows()
            if model_meta is not None and (existing is None or reindex):
                store._write_meta(model_meta)
            (root / "meta").mkdir(exist_ok=True)
            store._sync_keeper()
        except BaseException:
            store.close()
            raise
        return store

    def _check_model(self, model_meta: dict) -> None:
        existing = self.meta
        if existing is not None and existing["model_id"] != model_meta["model_id"]:
            raise ModelMismatchError(
                f"index {self.root} was built with model {describe_model(existing)}, not "
                f"{model_meta.get('model_name')} (sha256 {model_meta['model_id'][:12]}); "
                + rebuild_hint(self.root)
            )

    # ------------------------------------------------------------------ meta

    @property
    def meta(self) -> dict[str, Any] | None:
        """The model the codes were made with (a dict), or None for a fresh index."""
        if self._meta is None:
            path = self.root / "meta" / "meta.parquet"
            rows = read_parquet(path).to_pylist() if path.is_file() else []
            self._meta = rows[0] if rows else None
        return self._meta

    @property
    def code_bits(self) -> int:
        meta = self.meta
        if meta is None:
            raise IndexMissingError(f"index {self.root} has no model recorded yet")
        return int(meta["code_bits"])

    def _write_meta(self, model_meta: dict) -> None:
        config = model_meta.get("model_config")
        if not isinstance(config, str):
            config = json.dumps(config if config is not None else {}, sort_keys=True)
        row = {
            "model_id": str(model_meta["model_id"]),
            "model_name": model_meta.get("model_name"),
            "model_config": config,
            "code_bits": int(model_meta["code_bits"]),
            "vidhash_version": model_meta.get("vidhash_version"),
            "created": dt.datetime.now(dt.UTC),
            "descriptor_dims": int(model_meta.get("descriptor_dims") or 0),
        }
        meta = pa.Table.from_pylist([row], schema=META_SCHEMA)
        write_parquet(meta, self.root / "meta" / "meta.parquet")
        self._meta = None

    def _wipe_rows(self) -> None:
        """Drop every video, keyframe and image; videos first, so a crash leaves no orphan."""
        for name in ("videos", "keyframes"):
            for p in parts(self.root / name).values():
                unlink(p)
        shutil.rmtree(self.root / IMAGES_DIR, ignore_errors=True)
        self._videos = {}

    # ------------------------------------------------------------------ the keeper

    def new_keeper(self) -> Keeper | None:
        """The keeper of the files derived from these tables (see the module docstring);
        called with the lock held and the model recorded. None: the tables alone."""
        return None

    def _after_recover(self) -> None:
        self._sync_keeper()

    def _sync_keeper(self) -> None:
        """Start the keeper afresh and reconcile it with the parts."""
        self._touched.clear()
        self._fresh.clear()
        self._keeper = self.new_keeper() if self.meta is not None else None
        if self._keeper is not None:
            self._keeper.sync()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Around each public write: once the outermost one has succeeded, the keeper gets
        its files' changes (a failure leaves its file stale, so the next open repairs it)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0:
            touched, fresh = dict(self._touched), dict(self._fresh)
            self._touched.clear()
            self._fresh.clear()
            if self._keeper is not None:
                self._keeper.update(touched, fresh)

    # ------------------------------------------------------------------ writing

    def _fill(self) -> dict[str, Any]:
        return {"code_bits": self.code_bits, "model_id": self.meta["model_id"]}

    def _keyframes_schema(self) -> pa.Schema:
        return keyframes_schema(self.code_bits, descriptor_dims(self.meta))

    def commit(self, video_row: dict, keyframes: list[dict] | pa.Table | None = None) -> str:
        """Commit one input (see :meth:`~vidhash.index.store.parts.PartStore.commit`);
        content already indexed under a smaller path is recorded as ``duplicate``. Returns
        the status."""
        self.acquire()
        if self.meta is None:
            raise UsageError(f"index {self.root} has no model recorded; open it with model_meta")
        with self._writing():
            return super().commit(video_row, keyframes)

    write_video = commit

    def write_row(self, row: dict[str, Any]) -> None:
        with self._writing():
            super().write_row(row)

    def drop_videos(self, paths: Iterable[str]) -> list[str]:
        with self._writing():
            return super().drop_videos(paths)

    def write_annotations(self, table: pd.DataFrame | pa.Table) -> None:
        """Replace the annotations table atomically (all rows or none)."""
        self.acquire()
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table[ANNOTATIONS_SCHEMA.names], preserve_index=False)
        table = table.select(ANNOTATIONS_SCHEMA.names).cast(ANNOTATIONS_SCHEMA)
        with self._writing():
            self._write_part(table, self.root / "annotations" / "annotations.parquet", "")

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
            if not path.is_file():
                return ANNOTATIONS_SCHEMA.empty_table()
            return read_parquet(path, ANNOTATIONS_SCHEMA)
        return super().read_arrow(name)

    def read_table(self, name: str) -> pd.DataFrame:
        """One table as pandas (the code column holds ``bytes``)."""
        return self.read_arrow(name).to_pandas()


def _foreign(root: Path) -> bool:
    """Entries that an interrupted index creation cannot have left (anything but ours)."""
    ours = (*TABLES, IMAGES_DIR, SEARCH_DIR, LOCK_NAME)
    return any(p.name not in ours and not p.name.startswith(".") for p in root.iterdir())
