"""Duplicate ownership: identical content at several paths is indexed once.

Keyframe ids derive from the content hash, so two copies of one file would give the same
ids twice. The *owner* of a content is its smallest path (string order) among the copies
that decoded (status ok or partial); every other copy is a ``duplicate`` row naming the
owner in ``error``. The choice does not depend on the order in which inputs finish, so
reruns and resumed runs agree. When the owner goes away, the next smallest copy (its
*heir*) inherits the keyframes without decoding again.

:class:`OwnedParts` is a :class:`~vidhash.index.store.parts.PartStore` with that policy (an
index; an extract folder keeps every copy). It fills the store's ``_owner_*`` steps through
the store's public methods (``row``, ``committed``, ``owners``, ``forget``, ``write_part``,
``write_row``), so it keeps the store's commit order (videos part removed first, written
last) without reaching into its state; ``parts`` does not import this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from vidhash.index.store.layout import PRIMARY_STATUSES, read_parquet
from vidhash.index.store.parts import PartStore


class OwnedParts(PartStore):
    """Parts in which each content has one owner; its other copies are duplicates."""

    def _owner_rival(self, row: dict[str, Any]) -> str | None:
        """Another path already holding this row's content, if the row would hold keyframes."""
        if row["status"] not in PRIMARY_STATUSES or not row["content_hash"]:
            return None
        owner = self.owners().get(row["content_hash"])
        return None if owner == row["video_path"] else owner

    def _owner_claimed(self, row: dict[str, Any], displaced: dict[str, Any] | None) -> None:
        """A displaced owner becomes a duplicate; every duplicate names the new owner."""
        path = row["video_path"]
        if displaced is not None:
            self._demote(displaced, path)
        self._retarget(row["content_hash"], path)

    def _owner_leaving(self, old: dict[str, Any], kpart: Path, keep: str | None) -> None:
        """An owner is leaving: its smallest duplicate copies its keyframes and takes over.

        ``keep``: the content the same path is about to be rewritten with; its duplicates
        then stay duplicates of this path.
        """
        content = old["content_hash"]
        if old["status"] not in PRIMARY_STATUSES or not content or content == keep:
            return
        heirs = sorted(
            p
            for p, r in self.committed().items()
            if r["status"] == "duplicate" and r["content_hash"] == content
        )
        if not heirs or not kpart.is_file():
            return
        heir = heirs[0]
        table = read_parquet(kpart)
        i = table.schema.get_field_index("video_path")
        column = pa.array([heir] * table.num_rows, pa.string())
        self.write_part(table.set_column(i, table.schema.field(i), column), "keyframes", heir)
        row = dict(self.row(heir))
        row.update(
            status=old["status"],
            error=old["error"],
            n_keyframes=table.num_rows,
            duration=old["duration"],
        )
        self.write_row(row)
        self._retarget(content, heir)

    def _owner_recover(self) -> None:
        """Uncommit duplicates whose owner is gone (an interrupted hand-over): they are redone."""
        owned = self.owners()
        for path, row in self.committed().items():
            if row["status"] == "duplicate" and row["content_hash"] not in owned:
                self.forget(path)

    def _demote(self, displaced: dict[str, Any], owner: str) -> None:
        """Record a displaced owner as a duplicate of the new one, then drop its keyframes."""
        displaced.update(status="duplicate", error=f"same content as {owner}", n_keyframes=0)
        self.write_row(displaced)
        self.remove_part("keyframes", displaced["video_path"])

    def _retarget(self, content: str, owner: str) -> None:
        """Duplicates name the current owner, as they would had it been indexed first."""
        expected = f"same content as {owner}"
        for row in self.committed().values():
            same = row["status"] == "duplicate" and row["content_hash"] == content
            if same and row["error"] != expected:
                self.write_row({**row, "error": expected})
