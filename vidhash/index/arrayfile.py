"""One file of named numpy arrays, written atomically and read by memory-mapping.

The container of the search file's segments (:mod:`vidhash.index.segment`). Layout::

    bytes 0-7    b"VHARRAYS"
    bytes 8-11   format version, uint32 little-endian (1)
    bytes 12-15  header length H, uint32 little-endian
    16 .. 16+H   header: UTF-8 JSON {"info": {...}, "arrays": {name: {"dtype", "shape",
                 "offset"}}}; dtypes are numpy strings with explicit byte order ("<i8", "|S26")
    then         each array's bytes, C order, starting at a multiple of 64 bytes

A file is written to a ``.tmp-*`` name, fsynced and renamed (:func:`vidhash.fsutil.atomic_path`),
so it is never seen half written. Reading maps the file once and returns read-only views:
pages are read when touched, so opening costs the same for a thousand rows or ten million.
A file shorter than its header says, or with another magic or version, raises
:class:`DamagedFile` (its contents are rebuilt from Parquet, never trusted).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.fsutil import atomic_path

MAGIC = b"VHARRAYS"
VERSION = 1
ALIGN = 64


class DamagedFile(ValueError):
    """An array file that is not what its header says (or not an array file at all)."""


def write_arrays(final: Path, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> int:
    """Write ``arrays`` (and the JSON-able ``info``) to ``final`` atomically; its size."""
    entries, offset = {}, 0
    prepared = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        prepared[name] = array
        entries[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += -(-array.nbytes // ALIGN) * ALIGN
    header = json.dumps({"info": info, "arrays": entries}, separators=(",", ":")).encode()
    start = -(-(16 + len(header)) // ALIGN) * ALIGN
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        fh.write(MAGIC + struct.pack("<II", VERSION, len(header)) + header)
        fh.write(b"\0" * (start - 16 - len(header)))
        for array in prepared.values():
            fh.write(memoryview(array.reshape(-1).view(np.uint8)))
            fh.write(b"\0" * (-array.nbytes % ALIGN))
    return start + offset


def read_arrays(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info, name -> read-only array view) of an array file, memory-mapped."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 16:
            raise DamagedFile(f"{path}: {size} bytes, not an array file")
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    magic, (version, length) = buffer[:8], struct.unpack("<II", buffer[8:16])
    if magic != MAGIC or version != VERSION or 16 + length > size:
        raise DamagedFile(f"{path}: not a version {VERSION} array file")
    try:
        header = json.loads(buffer[16 : 16 + length])
        start = -(-(16 + length) // ALIGN) * ALIGN
        arrays = {}
        for name, entry in header["arrays"].items():
            dtype = np.dtype(entry["dtype"])
            shape = tuple(entry["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            offset = start + int(entry["offset"])
            if offset + count * dtype.itemsize > size:
                raise DamagedFile(f"{path}: array {name} runs past the end of the file")
            flat = np.frombuffer(buffer, dtype, count=count, offset=offset)
            arrays[name] = flat.reshape(shape)
        return header["info"], arrays
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DamagedFile):
            raise
        raise DamagedFile(f"{path}: unreadable header ({exc})") from None
