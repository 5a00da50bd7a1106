"""The planner: what a run must do, decided once for every engine and both outputs.

Rules (documented in docs/SCHEMA.md and docs/EXTRACT.md):

* **Identity.** An input is its absolute path (``os.path.abspath``: made absolute, links
  kept); its parts are keyed by :func:`vidhash.index.store.layout.part_key` of that path.
* **Unchanged.** A committed input with the same sampling options, size and ``mtime_ns``
  is not read at all. If only the stat differs, the content hash decides: the same bytes
  (a touched file) are not decoded again, and the stored stat is refreshed so the next run
  does not hash the file again. Failed inputs follow the same rule (not retried until
  they change); an input that could not be read at all is retried.
* **New or changed** (or other sampling options) -> a :class:`WorkItem` to decode.
* **Damaged.** A committed input whose keyframes part or images are missing or unreadable
  (:meth:`vidhash.index.store.parts.PartStore.check`) is decoded again.
* **Skipped.** What discovery turns down (a file that is not a video or image, a dangling
  symlink, a loop, an unreadable file) gets a ``skipped`` row with the reason.
* **Removed.** A committed input that is neither among this run's inputs nor on disk any
  more loses its rows (rows of other inputs, from runs over other folders, are kept), and
  so do rows under a relative path (written by an older vidhash).

Every input ends in exactly one of ``todo`` (to decode), ``rows`` (recorded without
decoding: skipped, unreadable), ``refresh`` or ``unchanged``; so processed + unchanged
equals the inputs. Whether a long input is cut into parts is not decided here (that needs
its duration and keyframe map, read where it is opened: :mod:`vidhash.ingest.split`), so
planning never opens a video; an input is one work item however it is decoded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidhash.errors import error_line
from vidhash.fsutil import content_hash
from vidhash.index.store.parts import Check, PartStore
from vidhash.ingest.options import IngestOptions
from vidhash.video.discover import Discovered, classify


@dataclass(frozen=True)
class WorkItem:
    """One input to decode: its absolute path, kind, content and stat."""

    path: str
    kind: str  # "video" | "image"
    content_hash: str
    size_bytes: int
    mtime_ns: int


@dataclass
class Plan:
    """What a run does to each input (see the module docstring)."""

    inputs: int = 0
    todo: list[WorkItem] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    refresh: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    check: Check = field(default_factory=Check)
    repaired: list[str] = field(default_factory=list)


def status_row(path: str, kind: str, status: str, error: str | None) -> dict[str, Any]:
    """A videos row for an input recorded without decoding."""
    return {"video_path": path, "kind": kind, "status": status, "error": error}


def make_plan(
    found: Discovered, store: PartStore, options: IngestOptions, *, full_check: bool = False
) -> Plan:
    """Sort every discovered input into the plan against ``store``'s rows.

    Discovery comes first, before the store is opened: a missing INPUT changes nothing.
    """
    committed = store.committed()
    plan = Plan(check=store.check(full=full_check))
    damaged = plan.check.damaged
    media = {os.path.abspath(p): "video" for p in found.videos}
    media.update({os.path.abspath(p): "image" for p in found.images})
    skipped = {os.path.abspath(p): reason for p, reason in found.skipped}
    plan.inputs = len(media) + len(skipped)
    gone = [p for p in committed if p not in media and p not in skipped]
    # a relative path is an older vidhash's identity: its input is recorded again, absolute
    plan.removed = [p for p in gone if not os.path.isabs(p) or not os.path.lexists(p)]
    for path, reason in sorted(skipped.items()):
        old = committed.get(path)
        if old is not None and (old["status"], old["error"]) == ("skipped", reason):
            plan.unchanged.append(old)
        else:
            plan.rows.append(status_row(path, classify(Path(path)), "skipped", reason))
    for path, kind in sorted(media.items()):
        old = committed.get(path)
        if old is not None and (path in damaged or not options.same_sampling(old["sampling"])):
            old = None
        try:
            stat = os.stat(path)
            same_stat = old is not None and old["size_bytes"] == stat.st_size
            if same_stat and old["mtime_ns"] == stat.st_mtime_ns:
                plan.unchanged.append(old)
                continue
            digest = content_hash(path)
        except OSError as exc:
            plan.rows.append(status_row(path, kind, "failed", error_line(exc)))
            continue
        if old is not None and old["content_hash"] == digest:
            plan.refresh.append({**old, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
            continue
        plan.todo.append(WorkItem(path, kind, digest, stat.st_size, stat.st_mtime_ns))
    plan.repaired = sorted(p for p in damaged if p in media)
    return plan
