"""One file of named numpy arrays, written atomically and read by memory-mapping.

The container of the search file's segments (:mod:`vidhash.index.search.segment`). Layout::

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

``read_arrays(path, access="read")`` gives :class:`FileArray` stand-ins instead of views:
every element access is a ``pread`` of just those bytes (runs of nearby rows are read in
one call). A one-off search touches a few hundred scattered rows; mapped, each touch
would map the whole page-cache folio around it (up to 2 MB on kernels with large folios,
counted in the process's RSS), while read it costs only the bytes read.
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


def read_arrays(path: Path, access: str = "map") -> tuple[dict[str, Any], dict[str, Any]]:
    """(info, name -> array) of an array file: read-only views of one memory map
    (``access="map"``), or :class:`FileArray` stand-ins that read what is asked for."""
    fh = open(path, "rb")  # noqa: SIM115 - kept open by FileArrays, closed otherwise
    try:
        size = os.fstat(fh.fileno()).st_size
        head = os.pread(fh.fileno(), 16, 0)
        if size < 16 or head[:8] != MAGIC:
            raise DamagedFile(f"{path}: not an array file")
        version, length = struct.unpack("<II", head[8:16])
        if version != VERSION or 16 + length > size:
            raise DamagedFile(f"{path}: not a version {VERSION} array file")
        header = json.loads(os.pread(fh.fileno(), length, 16))
        start = -(-(16 + length) // ALIGN) * ALIGN
        layout = {}
        for name, entry in header["arrays"].items():
            dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
            offset = start + int(entry["offset"])
            if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > size:
                raise DamagedFile(f"{path}: array {name} runs past the end of the file")
            layout[name] = (dtype, shape, offset)
        info = header["info"]
    except (KeyError, TypeError, ValueError) as exc:
        fh.close()
        if isinstance(exc, DamagedFile):
            raise
        raise DamagedFile(f"{path}: unreadable header ({exc})") from None
    except BaseException:
        fh.close()
        raise
    if access == "read":
        return info, {name: FileArray(fh, *spec) for name, spec in layout.items()}
    with fh:
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    arrays = {}
    for name, (dtype, shape, offset) in layout.items():
        count = int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(buffer, dtype, count=count, offset=offset).reshape(shape)
    return info, arrays


class FileArray:
    """A read-only array in a file, read with ``pread`` as it is indexed (by an int, a
    slice, an int or bool array, or a tuple whose first item is one of those)."""

    _GAP = 4096  # rows this many bytes apart or closer are read in one call

    def __init__(self, fh: Any, dtype: np.dtype, shape: tuple, offset: int) -> None:
        self._fh = fh
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self._offset = offset
        self._row = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def view(self, dtype) -> FileArray:
        """The same bytes as another dtype (the last axis rescaled, as ndarray.view)."""
        dtype = np.dtype(dtype)
        inner = list(self.shape[1:]) or [1]
        inner[-1] = inner[-1] * self.dtype.itemsize // dtype.itemsize
        shape = (self.shape[0], *inner) if len(self.shape) > 1 else (self.shape[0] * inner[0],)
        return FileArray(self._fh, dtype, shape, self._offset)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self._rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        hi = max(lo, min(hi, len(self)))
        data = os.pread(self._fh.fileno(), (hi - lo) * self._row, self._offset + lo * self._row)
        return np.frombuffer(data, self.dtype).reshape((hi - lo, *self.shape[1:]))

    def __getitem__(self, index):
        rest = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            out, lead = self._rows(lo, hi)[::step], 1
        elif np.ndim(index) == 0:
            i = int(index)
            i = i + len(self) if i < 0 else i
            if not 0 <= i < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} rows")
            out, lead = self._rows(i, i + 1)[0], 0
        else:
            index = np.asarray(index)
            out, lead = self._take(index), 1 if index.dtype == bool else index.ndim
        return out[(slice(None),) * lead + rest] if rest else out

    def _take(self, index: np.ndarray) -> np.ndarray:
        if index.dtype == bool:
            index = np.flatnonzero(index)
        flat = index.ravel().astype(np.int64)
        if not len(flat):
            return np.zeros((*index.shape, *self.shape[1:]), self.dtype)
        wanted, where = np.unique(flat, return_inverse=True)
        gap = max(1, self._GAP // max(self._row, 1))
        breaks = np.flatnonzero(np.diff(wanted) > gap) + 1
        parts = []
        for run in np.split(wanted, breaks):
            block = self._rows(int(run[0]), int(run[-1]) + 1)
            parts.append(block[run - run[0]])
        return np.concatenate(parts)[where].reshape((*index.shape, *self.shape[1:]))


def bsearch(array, key: bytes) -> int:
    """Where ``key`` belongs in a sorted 1-D bytes array (``np.searchsorted`` left), by
    looking at about log2(n) elements only (for a mapped or a :class:`FileArray` alike)."""
    lo, hi = 0, len(array)
    while lo < hi:
        mid = (lo + hi) // 2
        if bytes(array[mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo
