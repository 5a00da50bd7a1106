"""What an open does when the search file is stale or missing (:meth:`Index.open`).

The reader (:mod:`vidhash.index.search.file`) never writes and never locks; this is the
one place an open takes the writer lock, and only when the file is not current:

* the lock is free: the writer (:class:`~vidhash.index.search.writer.SearchWriter`)
  reconciles the file with the Parquet parts (only what changed) and the open reads it;
* another process holds it (``vidhash index`` is running; it keeps the file current and
  repaired it when it started): the last good file is read as it is, a committed state at
  most one commit old, if it was made for the index's model;
* otherwise (a read-only index, a file that cannot be written, a writer running and no
  usable file): the view is built in memory from the committed Parquet rows.

Loaded only when needed, so an open of a current file imports no pyarrow.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from vidhash.errors import UsageError
from vidhash.index.search import segment
from vidhash.index.search.arrayfile import DamagedFile
from vidhash.index.search.file import Concepts, Manifest, SearchView, source_files
from vidhash.index.search.writer import SearchWriter, labels_of, manifest_meta
from vidhash.index.store.layout import part_key
from vidhash.index.store.store import IndexTables

log = logging.getLogger("vidhash.index")


def in_memory(store: IndexTables) -> SearchView:
    """The view built from the committed Parquet rows, written nowhere."""
    meta = manifest_meta(store.meta)
    table = store.read_arrow("keyframes")
    files = source_files(store.root)
    parts = {
        p: files.get(f"keyframes/part-{part_key(p)}.parquet", (0, 0))
        for p in set(table.column("video_path").to_pylist())
    }
    seg = segment.from_arrow(table, int(meta["code_bits"]), parts)
    labels = labels_of(store.read_arrow("annotations"))
    concepts = Concepts.from_mapping(labels) if labels else None
    return SearchView(meta, [seg], [np.zeros(0, np.int32)], concepts)


def repair(root: Path, manifest: Manifest | None, access: str = "map") -> SearchView:
    """A stale or missing search file on open: rebuild it under the writer lock, or, when
    that lock is held or cannot be taken, read the last good file or build in memory."""
    store = IndexTables.open(root)
    store.code_bits  # noqa: B018 - raises IndexMissingError when no model is recorded
    try:
        store.lock()
    except UsageError:  # a writer is running: it keeps the search file current
        with contextlib.suppress(OSError, DamagedFile, ValueError, KeyError):
            if manifest is not None and manifest.meta == manifest_meta(store.meta):
                return SearchView.load(root, manifest, access)
        return in_memory(store)
    except OSError:  # a read-only index
        return in_memory(store)
    try:
        SearchWriter(store).sync()
        fresh = Manifest.read(root)
        if fresh is not None:
            return SearchView.load(root, fresh, access)
    except OSError as exc:
        log.warning("%s: cannot write its search file (%s); searching from Parquet", root, exc)
    finally:
        store.close()
    return in_memory(store)
