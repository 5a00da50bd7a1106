"""The search file: what a search reads instead of the Parquet tables, kept at every commit.

``INDEX/search/`` holds immutable segment files (:mod:`vidhash.index.search.segment`: codes padded
to 64 bits, keyframe ids, inputs, times; rows sorted by keyframe id), an optional concepts
file (labels by keyframe id) and ``manifest.json``, the commit point::

    {"format": 1, "generation": 42, "meta": {model_id, model_name, model_config, code_bits,
     vidhash_version, created}, "files": 2002, "digest": "<16 hex>",
     "segments": [{"file": "seg-0000000041-0.bin", "rows": 1000000, "dead": [3, 17]}],
     "concepts": "concepts-0000000040.bin" or null}

``dead`` lists a segment's inputs (video numbers) whose rows no longer count: dropped or
redone since. ``files`` and ``digest`` fingerprint the Parquet files the search file was
made from: every ``videos/`` and ``keyframes/`` part, ``meta/meta.parquet`` and
``annotations/annotations.parquet``, each as (path, size, mtime_ns), hashed and
summed mod 2^64, so the writer updates it per file it touches. (Not the inode: a copy of
an index that keeps modification times, ``cp -a``, is still current.)

Contracts:

* Crash safety: segment and concepts files are written whole (temp name, fsync, rename)
  before the manifest that names them, and the manifest is replaced the same way; files
  no manifest names are deleted afterwards. A kill at any moment leaves the old manifest
  with its files or the new one with its files, never a mixture.
* The Parquet tables are the source of truth. :func:`read_current` compares the manifest's
  fingerprint with the files on disk (one ``stat`` per part file). Equal: the search file
  is current and is read. Different or missing: it answers nothing, and the open repairs it
  (:mod:`vidhash.index.search.repair`: rebuilt under the writer lock, only what changed;
  the last good file while another writer holds the lock; else built in memory).
* Readers never block, never write, never take the lock and never see a half-written
  state. A segment deleted between reading the manifest and opening it (a writer compacted
  meanwhile) makes the reader read the manifest again.

This module is the reader: the writer (:mod:`vidhash.index.search.writer`) imports it,
never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.errors import IndexMissingError
from vidhash.index.search.arrayfile import DamagedFile, bsearch, read_arrays
from vidhash.index.search.segment import Segment, fixed_ids
from vidhash.index.store.paths import (
    ANNOTATIONS_FILE,
    META_FILE,
    PART_PREFIX,
    SEARCH_DIR,
    descriptor_dims,
    is_index,
)

log = logging.getLogger("vidhash.index")

FORMAT = 1
MANIFEST = "manifest.json"
_FINGERPRINTED = ("videos", "keyframes")
_OPEN_ATTEMPTS = 5

Fingerprint = tuple[int, int]  # (size, mtime_ns)


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns)


def source_files(root: Path) -> dict[str, Fingerprint]:
    """relative path -> fingerprint of every file the search file is made from."""
    out = {}
    for folder in _FINGERPRINTED:
        try:
            with os.scandir(root / folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(PART_PREFIX) and name.endswith(".parquet"):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue
                        out[f"{folder}/{name}"] = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            continue
    for rel in (META_FILE, ANNOTATIONS_FILE):
        found = fingerprint(root / rel)
        if found is not None:
            out[rel] = found
    return out


def entry_hash(rel: str, fp: Fingerprint) -> int:
    text = f"{rel}\0{fp[0]}\0{fp[1]}".encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def digest(files: dict[str, Fingerprint]) -> int:
    return sum(entry_hash(rel, fp) for rel, fp in files.items()) % (1 << 64)


@dataclass
class Manifest:
    """The search file's commit point (``search/manifest.json``)."""

    generation: int
    meta: dict[str, Any]
    files: int
    digest: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    concepts: str | None = None
    annotations: list[int] | None = None  # fingerprint of the table the concepts came from

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "generation": self.generation,
            "meta": self.meta,
            "files": self.files,
            "digest": f"{self.digest:016x}",
            "segments": self.segments,
            "concepts": self.concepts,
            "annotations": self.annotations,
        }
        return json.dumps(body, indent=1, sort_keys=True)

    @classmethod
    def read(cls, root: Path) -> Manifest | None:
        """The manifest, or None when there is none or it is not one this vidhash writes."""
        try:
            body = json.loads((root / SEARCH_DIR / MANIFEST).read_text())
            if body.get("format") != FORMAT:
                return None
            return cls(
                int(body["generation"]),
                dict(body["meta"]),
                int(body["files"]),
                int(body["digest"], 16),
                list(body["segments"]),
                body.get("concepts"),
                body.get("annotations"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def current(self, files: dict[str, Fingerprint]) -> bool:
        return self.files == len(files) and self.digest == digest(files)


class Concepts:
    """Concept labels by keyframe id: sorted ids, and each id's sorted concept names."""

    def __init__(self, arrays: dict[str, np.ndarray], names: list[str]) -> None:
        self.ids = arrays["ids"]
        self.offsets = arrays["offsets"]
        self.values = arrays["values"]
        self.names = names

    @classmethod
    def load(cls, path: Path, access: str = "map") -> Concepts:
        info, arrays = read_arrays(path, access)
        return cls(arrays, list(info["names"]))

    @classmethod
    def from_mapping(cls, labels: dict[str, list[str]]) -> Concepts:
        """id -> concept names; what the concepts file stores, in memory."""
        names = sorted({c for cs in labels.values() for c in cs})
        number = {c: i for i, c in enumerate(names)}
        ids = sorted(labels)
        lists = [sorted({number[c] for c in labels[i]}) for i in ids]
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum([len(v) for v in lists], out=offsets[1:])
        values = np.array([v for vs in lists for v in vs], np.int32)
        arrays = {"ids": fixed_ids(ids), "offsets": offsets, "values": values}
        return cls(arrays, names)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": self.ids, "offsets": self.offsets, "values": self.values}

    def ids_of(self, concept: str) -> np.ndarray:
        """The sorted keyframe ids (bytes) labelled ``concept``."""
        number = self.names.index(concept)
        owners = np.repeat(np.arange(len(self.ids)), np.diff(np.asarray(self.offsets)))
        return np.asarray(self.ids)[owners[np.asarray(self.values) == number]]

    def of(self, keyframe_id: str) -> list[str]:
        key = keyframe_id.encode("utf-8", "surrogateescape")
        if not len(self.ids) or len(key) > self.ids.dtype.itemsize:
            return []
        i = bsearch(self.ids, key)
        if i >= len(self.ids) or bytes(self.ids[i]) != key:
            return []
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return [self.names[v] for v in self.values[lo:hi].tolist()]


@dataclass
class SearchView:
    """What one open sees: segments, their dead inputs, concepts and the model's meta."""

    meta: dict[str, Any]
    segments: list[Segment]
    dead: list[np.ndarray]
    concepts: Concepts | None
    generation: int | None = None  # None: built in memory, not read from a search file

    @property
    def code_bits(self) -> int:
        return int(self.meta["code_bits"])

    @classmethod
    def load(cls, root: Path, manifest: Manifest, access: str = "map") -> SearchView:
        """The files ``manifest`` names, memory-mapped or (``access="read"``) read as
        searches ask (:func:`vidhash.index.search.arrayfile.read_arrays`)."""
        folder = root / SEARCH_DIR
        bits, dims = int(manifest.meta["code_bits"]), descriptor_dims(manifest.meta)
        segments = [Segment.load(folder / s["file"], bits, access, dims) for s in manifest.segments]
        dead = [np.array(sorted(s.get("dead", [])), np.int32) for s in manifest.segments]
        concepts = None
        if manifest.concepts:
            concepts = Concepts.load(folder / manifest.concepts, access)
        return cls(dict(manifest.meta), segments, dead, concepts, manifest.generation)


def read_current(
    path: str | os.PathLike, access: str = "map"
) -> tuple[SearchView | None, Manifest | None]:
    """The index at ``path`` as its search file shows it, when that file is current.

    Returns (view, None) when it is; (None, the manifest found or None) when it is stale,
    missing or damaged, for the caller to repair. ``access="read"`` reads the files with
    ``pread`` as searches ask instead of mapping them: for one-off processes (``vidhash
    search``), whose RSS then holds only what they read. Raises ``IndexMissingError`` when
    there is no index at path.
    """
    root = Path(path)
    if not is_index(root):
        if root.exists() and not root.is_dir():
            raise IndexMissingError(f"{root} is a file, not an index directory")
        raise IndexMissingError(f"no vidhash index at {root}")
    manifest = None
    for _ in range(_OPEN_ATTEMPTS):
        manifest = Manifest.read(root)
        if manifest is None or not manifest.current(source_files(root)):
            break
        try:
            return SearchView.load(root, manifest, access), None
        except FileNotFoundError:
            continue  # a writer replaced segments since we read the manifest: read it again
        except (DamagedFile, ValueError, KeyError) as exc:
            log.warning("%s: search file damaged (%s); rebuilding it", root, exc)
            return None, None
    return None, manifest
