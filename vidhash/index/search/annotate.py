"""Concept labels from a CSV, resolved to keyframe ids and stored as the annotations table.

A label row names a concept, its group (``global`` or ``local`` in the paper; any name
works) and a scope: one keyframe (``keyframe_id``), a whole video or image (``video``), or
a time range of a video (``video`` with ``start`` and/or ``end`` seconds, inclusive).
``video`` is a path as indexed, or a file name that is unique in the index. Rows are
multi-label: a keyframe can carry any number of concepts.

Every row is checked before anything is written: the file is accepted whole or not at
all, and the error lists each bad row by line number.

Labels are read from the tables but written through the index writer
(:class:`vidhash.index.search.writer.IndexStore`), so the search file's concepts follow in
the same call: that is why this module sits in the search room, above the store.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import pandas as pd

from vidhash.errors import InputError
from vidhash.index.search.writer import IndexStore
from vidhash.index.store.layout import PRIMARY_STATUSES
from vidhash.index.store.store import IndexTables

REQUIRED = ("concept", "group")
SCOPES = ("keyframe_id", "video")
KNOWN_COLUMNS = (*REQUIRED, *SCOPES, "start", "end")
_MAX_LISTED = 20


@dataclass
class AnnotateSummary:
    """What ``vidhash annotate`` stored (printed as text or with --json)."""

    rows: int = 0
    labels: int = 0
    keyframes: int = 0
    concepts: dict[str, int] = field(default_factory=dict)
    empty_rows: list[int] = field(default_factory=list)  # ranges that hold no keyframe


def _blank(value: str | None) -> bool:
    return value is None or value.strip() == ""


def _seconds(value: str | None, name: str) -> float | None:
    if _blank(value):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} {value!r} must be a finite number >= 0")
    return seconds


class _VideoResolver:
    """Maps a CSV ``video`` value to the content (video_id) whose keyframes it labels."""

    def __init__(self, videos: pd.DataFrame) -> None:
        self.by_path: dict[str, str | None] = {}
        self.by_name: dict[str, list[str]] = {}
        owners = {
            row.content_hash
            for row in videos.itertuples()
            if row.status in PRIMARY_STATUSES and row.content_hash
        }
        for row in videos.itertuples():
            # a duplicate path labels the content it duplicates; a failed input has none
            content = row.content_hash if row.content_hash in owners else None
            self.by_path[row.video_path] = content
            self.by_name.setdefault(PurePath(row.video_path).name, []).append(row.video_path)

    def resolve(self, value: str) -> str:
        value = value.strip()
        candidates = [value] if value in self.by_path else self.by_name.get(value, [])
        if not candidates:
            normalised = os.path.normpath(value)
            candidates = [p for p in self.by_path if os.path.normpath(p) == normalised]
        if not candidates and os.path.exists(value):
            # the same file, spelt another way (absolute vs relative, through a symlink)
            real = os.path.realpath(value)
            candidates = [p for p in self.by_path if os.path.realpath(p) == real]
        if not candidates:
            raise ValueError(f"video {value!r} is not in the index")
        if len(candidates) > 1:
            listed = ", ".join(sorted(candidates)[:5])
            raise ValueError(f"video name {value!r} is ambiguous ({listed}); give its path")
        content = self.by_path[candidates[0]]
        if content is None:
            raise ValueError(f"video {value!r} has no keyframes in the index (it failed)")
        return content


def parse_labels(
    labels_csv: str | os.PathLike, store: IndexTables
) -> tuple[pd.DataFrame, int, list[int]]:
    """Resolve a labels CSV: (annotations rows, label rows read, lines whose scope is empty).

    Raises :class:`InputError` listing every bad row when any row is bad.
    """
    keyframes = store.read_table("keyframes")[["keyframe_id", "video_id", "pts_time"]]
    return resolve_labels(labels_csv, keyframes, store.read_table("videos"))


def resolve_labels(
    labels_csv: str | os.PathLike, keyframes: pd.DataFrame, videos: pd.DataFrame
) -> tuple[pd.DataFrame, int, list[int]]:
    """:func:`parse_labels` against given tables: ``keyframes`` (keyframe_id, video_id,
    pts_time) and ``videos`` (video_path, content_hash, status), e.g. a benchmark's own
    keyframes, so that every labels CSV is read by these rules."""
    path = Path(labels_csv)
    if not path.is_file():
        raise InputError(f"labels file not found: {path}")
    checker = _RowChecker(
        known_ids=set(keyframes["keyframe_id"]),
        frames_of={vid: frame for vid, frame in keyframes.groupby("video_id")},
        resolver=_VideoResolver(videos),
    )
    header, rows = _read_rows(path)
    problems: list[str] = []
    out: list[tuple[str, str, str]] = []
    empty: list[int] = []
    n_rows = 0
    for line, row in rows:
        if None in row:  # more fields than the header
            problems.append(f"line {line}: more fields than the header's {len(header)}")
            continue
        if all(_blank(v) for v in row.values()):
            continue
        n_rows += 1
        try:
            concept, group, ids = checker.check(line, row)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if not ids:
            empty.append(line)
        out.extend((kid, concept, group) for kid in ids)
    _refuse_problems(path, problems)
    table = pd.DataFrame(out, columns=["keyframe_id", "concept", "group"]).drop_duplicates()
    return table.sort_values(["keyframe_id", "concept"]).reset_index(drop=True), n_rows, empty


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(stripped header, (line number, row) pairs): the whole file is read and its header
    checked before any row is resolved; undecodable or malformed CSV is an InputError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            _check_header(path, header)
            reader.fieldnames = header
            return header, [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None


@dataclass
class _RowChecker:
    """Resolves one label row; remembers each concept's group, since a concept belongs to
    one group across the whole file."""

    known_ids: set
    frames_of: dict[str, pd.DataFrame]
    resolver: _VideoResolver
    group_of: dict[str, tuple[str, int]] = field(default_factory=dict)

    def check(self, line: int, row: dict) -> tuple[str, str, list[str]]:
        """(concept, group, keyframe ids labelled); ValueError says what is wrong."""
        concept, group = ((row.get(c) or "").strip() for c in REQUIRED)
        if not concept or not group:
            raise ValueError("concept and group must not be empty")
        seen = self.group_of.setdefault(concept, (group, line))
        if seen[0] != group:
            raise ValueError(
                f"concept {concept!r} is in group {group!r} here but {seen[0]!r} on line {seen[1]}"
            )
        return concept, group, _scope(row, self.known_ids, self.frames_of, self.resolver)


def _refuse_problems(path: Path, problems: list[str]) -> None:
    """All or nothing: any bad row refuses the file, listing the first few bad rows."""
    if problems:
        shown = problems[:_MAX_LISTED]
        more = len(problems) - len(shown)
        raise InputError(
            f"{path}: {len(problems)} bad label row(s), nothing written: "
            + "; ".join(shown)
            + (f"; ... and {more} more" if more else "")
        )


def _check_header(path: Path, header: list[str]) -> None:
    if not header:
        raise InputError(f"{path}: empty labels file (expected a header: concept,group,...)")
    missing = [c for c in REQUIRED if c not in header]
    if missing or not any(s in header for s in SCOPES):
        raise InputError(
            f"{path}: header must have concept, group and keyframe_id or video "
            f"(optionally start, end); got {','.join(header)}"
        )
    unknown = [h for h in header if h not in KNOWN_COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown column(s) {', '.join(unknown)}")


def _scope(row: dict, known_ids: set, frames_of: dict, resolver: _VideoResolver) -> list[str]:
    kid, video = (row.get("keyframe_id") or "").strip(), (row.get("video") or "").strip()
    start, end = _seconds(row.get("start"), "start"), _seconds(row.get("end"), "end")
    if kid and video:
        raise ValueError("give keyframe_id or video, not both")
    if kid:
        if start is not None or end is not None:
            raise ValueError("start/end apply to a video, not to a keyframe_id")
        if kid not in known_ids:
            raise ValueError(f"unknown keyframe_id {kid!r}")
        return [kid]
    if not video:
        raise ValueError("no keyframe_id or video given")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end {end} is before start {start}")
    frames = frames_of.get(resolver.resolve(video))
    if frames is None:
        return []
    mask = pd.Series(True, index=frames.index)
    if start is not None:
        mask &= frames["pts_time"] >= start - 1e-6
    if end is not None:
        mask &= frames["pts_time"] <= end + 1e-6
    return frames.loc[mask, "keyframe_id"].tolist()


def annotate(index: str | os.PathLike, labels_csv: str | os.PathLike) -> AnnotateSummary:
    """Replace the index's annotations with the labels in ``labels_csv`` (all or nothing)."""
    store = IndexStore.open(index)
    table, n_rows, empty = parse_labels(labels_csv, store)
    store.write_annotations(table)
    store.close()
    counts = table.groupby("concept")["keyframe_id"].nunique()
    return AnnotateSummary(
        rows=n_rows,
        labels=int(len(table)),
        keyframes=int(table["keyframe_id"].nunique()),
        concepts={str(c): int(n) for c, n in counts.items()},
        empty_rows=empty,
    )
