"""Duplicate ownership: identical content at several paths is indexed once.

Keyframe ids derive from the content hash, so two copies of one file would give the same
ids twice. The *owner* of a content is its smallest path (string order) among the copies
that decoded (status ok or partial); every other copy is a ``duplicate`` row naming the
owner in ``error``. The choice does not depend on the order in which inputs finish, so
reruns and resumed runs agree. When the owner goes away, the next smallest copy (its
*heir*) inherits the keyframes without decoding again.

These functions keep that policy for a :class:`vidhash.index.parts.PartStore` whose
``dedupe`` is set; they keep its commit order (videos part removed first, written last).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vidhash.index.layout import PRIMARY_STATUSES, read_parquet

if TYPE_CHECKING:
    from vidhash.index.parts import PartStore


def rival(store: PartStore, row: dict[str, Any]) -> str | None:
    """Another path already holding this row's content, if the row would hold keyframes."""
    if row["status"] not in PRIMARY_STATUSES or not row["content_hash"]:
        return None
    owner = store.owners().get(row["content_hash"])
    return None if owner == row["video_path"] else owner


def uncommit(store: PartStore, owner: str) -> dict[str, Any]:
    """Uncommit an owner that a smaller path displaces, so no two inputs hold the same ids."""
    displaced = store._rows.pop(owner)
    store._remove_part(store.part("videos", owner), owner)
    return displaced


def demote(store: PartStore, displaced: dict[str, Any], owner: str) -> None:
    """Record a displaced owner as a duplicate of the new one, then drop its keyframes."""
    displaced.update(status="duplicate", error=f"same content as {owner}", n_keyframes=0)
    store.write_row(displaced)
    store._remove_part(store.part("keyframes", displaced["video_path"]), displaced["video_path"])


def retarget(store: PartStore, content: str, owner: str) -> None:
    """Duplicates name the current owner, as they would had it been indexed first."""
    expected = f"same content as {owner}"
    for row in list(store._rows.values()):
        same = row["status"] == "duplicate" and row["content_hash"] == content
        if same and row["error"] != expected:
            store.write_row({**row, "error": expected})


def hand_over(store: PartStore, old: dict[str, Any], kpart: Path, keep: str | None) -> None:
    """An owner is leaving: its smallest duplicate copies its keyframes and takes over.

    ``keep``: the content the same path is about to be rewritten with; its duplicates
    then stay duplicates of this path.
    """
    content = old["content_hash"]
    if old["status"] not in PRIMARY_STATUSES or not content or content == keep:
        return
    heirs = sorted(
        p
        for p, r in store._rows.items()
        if r["status"] == "duplicate" and r["content_hash"] == content
    )
    if not heirs or not kpart.is_file():
        return
    heir = heirs[0]
    table = read_parquet(kpart)
    i = table.schema.get_field_index("video_path")
    column = pa.array([heir] * table.num_rows, pa.string())
    inherited = table.set_column(i, table.schema.field(i), column)
    store._write_part(inherited, store.part("keyframes", heir), heir)
    row = dict(store._rows[heir])
    row.update(
        status=old["status"],
        error=old["error"],
        n_keyframes=table.num_rows,
        duration=old["duration"],
    )
    store.write_row(row)
    retarget(store, content, heir)


def drop_orphans(store: PartStore) -> None:
    """Uncommit duplicates whose owner is gone (an interrupted hand-over): they are redone."""
    owned = store.owners()
    for path, row in list(store._rows.items()):
        if row["status"] == "duplicate" and row["content_hash"] not in owned:
            store._rows.pop(path)
            store._remove_part(store.part("videos", path), path)
