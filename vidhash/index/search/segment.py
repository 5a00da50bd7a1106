"""A segment of the search file: the keyframes of some committed inputs, sorted by id.

One array file (:mod:`vidhash.index.search.arrayfile`) per segment, never changed once written.
Every per-row array is in the same row order, keyframe id order (bytes of the UTF-8 id,
which is Python's and Arrow's string order), so within a segment a row number orders like
the keyframe id and "ties by row" is "ties by keyframe id" (docs/SCHEMA.md, the search
file)::

    codes        (n, 8W) uint8   the code zero-padded to W 64-bit words (read as uint64)
    ids          (n,)    S<w>    keyframe ids, UTF-8, NUL-padded
    video        (n,)    int32   the row's input: a number into the video arrays below
    pts          (n,)    float64 pts_time
    frame_index  (n,)    int64   \\
    width/height (n,)    int32    } null is the type's minimum
    rotation     (n,)    int16   /
    desc         (n, D)  float16 the keyframe's descriptor, unit length (only when the
                                 index's model has one: docs/SCHEMA.md)
    image        (n,)    uint8   0 no image, 1 images/<id[:16]>/<id>.jpg, 2 another path:
    image_rows, image_paths_*    the rows with flag 2 and their paths
    video_path_*, video_id_*     per input: its path and content hash (offsets + UTF-8 bytes)
    video_rows   (nv,)   int64   rows of each input
    video_part   (nv, 2) int64   (size, mtime_ns) of the keyframes part they came from
    mih{j}_*                     multi-index hashing tables (:mod:`vidhash.index.search.mih`) when
                                 the segment holds at least ``MIH_MIN_ROWS`` rows

Building from Arrow needs pyarrow (the writer); reading needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.index.search import mih
from vidhash.index.search.arrayfile import bsearch, read_arrays, write_arrays
from vidhash.index.store.paths import image_relpath

MIH_MIN_ROWS = 100_000
NULLS = {"frame_index": np.int64, "width": np.int32, "height": np.int32, "rotation": np.int16}
ROW_ARRAYS = ("codes", "ids", "video", "pts", *NULLS, "image")
OPTIONAL_ROW_ARRAYS = ("desc",)


def row_arrays(arrays: dict) -> tuple[str, ...]:
    """The per-row arrays a segment (or a segment being built) holds."""
    return ROW_ARRAYS + tuple(name for name in OPTIONAL_ROW_ARRAYS if name in arrays)


def words(code_bits: int) -> int:
    """64-bit words per padded code."""
    return -(-code_bits // 64)


def pack_strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (offsets (n+1,) int64, UTF-8 bytes uint8)."""
    raw = [v.encode("utf-8", "surrogateescape") for v in values]
    offsets = np.zeros(len(raw) + 1, np.int64)
    np.cumsum([len(b) for b in raw], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(raw), np.uint8).copy()


def unpack_string(offsets: np.ndarray, data: np.ndarray, i: int) -> str:
    return bytes(data[int(offsets[i]) : int(offsets[i + 1])]).decode("utf-8", "surrogateescape")


def fixed_ids(ids: list[str] | np.ndarray) -> np.ndarray:
    """Keyframe ids as a fixed-width bytes array (at least 1 byte wide)."""
    raw = [s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s for s in ids]
    width = max([1, *map(len, raw)])
    return np.array(raw, dtype=f"S{width}")


@dataclass
class Segment:
    """One segment's arrays (memory-mapped from its file, or in memory while built)."""

    code_bits: int
    arrays: dict[str, np.ndarray]
    name: str | None = None
    _paths: dict[int, str] = field(default_factory=dict, repr=False)
    _video_ids: dict[int, str] = field(default_factory=dict, repr=False)
    _by_video_id: dict[str, list[int]] | None = field(default=None, repr=False)
    # The engine's probed MIH cost per (k, radius, budget): vidhash.index.search.engine.plan.
    probes: dict[tuple, float] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.codes = self.arrays["codes"].view(np.uint64)
        self.ids = self.arrays["ids"]
        self.video = self.arrays["video"]
        self.desc = self.arrays.get("desc")  # (n, D) float16, or None: codes only
        self.tables = mih.Tables.from_arrays(self.arrays)

    # ------------------------------------------------------------------ files

    @classmethod
    def load(
        cls, path: Path, code_bits: int, access: str = "map", descriptor_dims: int = 0
    ) -> Segment:
        """The segment in ``path``: memory-mapped, or (``access="read"``) read as indexed."""
        info, arrays = read_arrays(path, access)
        if info.get("code_bits") != code_bits or arrays["codes"].shape[1] != 8 * words(code_bits):
            raise ValueError(f"{path}: holds {info.get('code_bits')}-bit codes, not {code_bits}")
        dims = arrays["desc"].shape[1] if "desc" in arrays else 0
        if dims != descriptor_dims:
            raise ValueError(f"{path}: holds {dims}-d descriptors, not {descriptor_dims}")
        return cls(code_bits, arrays, path.name)

    @property
    def descriptor_dims(self) -> int:
        return 0 if self.desc is None else int(self.desc.shape[1])

    def save(self, path: Path) -> int:
        """Write this segment to ``path`` (atomically); returns the bytes written."""
        info = {"code_bits": self.code_bits, "rows": len(self), "videos": self.n_videos}
        return write_arrays(path, self.arrays, info)

    # ------------------------------------------------------------------ sizes and lookups

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_videos(self) -> int:
        return len(self.arrays["video_rows"])

    def video_path(self, vno: int) -> str:
        if vno not in self._paths:
            a = self.arrays
            self._paths[vno] = unpack_string(a["video_path_offsets"], a["video_path_data"], vno)
        return self._paths[vno]

    def video_id(self, vno: int) -> str:
        if vno not in self._video_ids:
            a = self.arrays
            self._video_ids[vno] = unpack_string(a["video_id_offsets"], a["video_id_data"], vno)
        return self._video_ids[vno]

    def video_numbers(self, video_ids: set[str] | frozenset[str]) -> np.ndarray:
        """The numbers of the inputs with these content hashes."""
        if self._by_video_id is None:
            a = self.arrays
            offsets, data = np.asarray(a["video_id_offsets"]), np.asarray(a["video_id_data"])
            self._by_video_id = {}
            for v in range(self.n_videos):
                self._by_video_id.setdefault(unpack_string(offsets, data, v), []).append(v)
        found = [v for vid in video_ids for v in self._by_video_id.get(vid, [])]
        return np.array(sorted(found), np.int32)

    def find(self, keyframe_id: str) -> int:
        """Row of a keyframe id, or -1 (binary search: a few pages of the ids array)."""
        key = keyframe_id.encode("utf-8", "surrogateescape")
        if len(key) > self.ids.dtype.itemsize or not len(self):
            return -1
        row = bsearch(self.ids, key)
        return row if row < len(self) and bytes(self.ids[row]) == key else -1

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Sorted rows of the keyframe ids (bytes) this segment holds; others are skipped."""
        mine = np.asarray(self.ids)
        if not len(mine) or not len(ids):
            return np.zeros(0, np.int64)
        width = max(mine.dtype.itemsize, np.asarray(ids).dtype.itemsize)
        mine, wanted = mine.astype(f"S{width}"), np.asarray(ids).astype(f"S{width}")
        at = np.minimum(np.searchsorted(mine, wanted), len(mine) - 1)
        return np.unique(at[mine[at] == wanted]).astype(np.int64)

    def image_path(self, row: int) -> str | None:
        flag = int(self.arrays["image"][row])
        if flag == 0:
            return None
        if flag == 1:
            return image_relpath(self.keyframe_id(row))
        a = self.arrays
        at = int(np.searchsorted(np.asarray(a["image_rows"]), row))
        return unpack_string(a["image_paths_offsets"], a["image_paths_data"], at)

    def keyframe_id(self, row: int) -> str:
        return bytes(self.ids[row]).decode("utf-8", "surrogateescape")

    def record(self, row: int) -> dict[str, Any]:
        """One row as the keyframes table has it (without the code columns)."""
        vno = int(self.video[row])
        out: dict[str, Any] = {
            "keyframe_id": self.keyframe_id(row),
            "video_id": self.video_id(vno),
            "video_path": self.video_path(vno),
            "pts_time": float(self.arrays["pts"][row]),
        }
        for name, dtype in NULLS.items():
            value = int(self.arrays[name][row])
            out[name] = None if value == np.iinfo(dtype).min else value
        out["image_path"] = self.image_path(row)
        return out

    def code(self, row: int, nbytes: int) -> np.ndarray:
        """The stored (unpadded) code of one row."""
        return np.array(self.arrays["codes"][row, :nbytes])

    def live_mask(self, dead: np.ndarray) -> np.ndarray | None:
        """Rows not of a dead input (None: all of them)."""
        return None if not len(dead) else ~np.isin(self.video, dead)


def strings_column(column) -> np.ndarray:
    """An Arrow string column as fixed-width bytes (ASCII ids without a Python object each)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.string())
    if len(column) == 0:
        return np.zeros(0, "S1")
    if not pc.all(pc.string_is_ascii(column)).as_py():
        return fixed_ids(column.to_pylist())
    width = max(1, pc.max(pc.utf8_length(column)).as_py())
    padded = pc.utf8_rpad(column, width=width, padding="\0")
    start = int(np.frombuffer(padded.buffers()[1], np.int32)[padded.offset])
    data = np.frombuffer(padded.buffers()[2], np.uint8, count=len(column) * width, offset=start)
    return data.view(f"S{width}").copy()


def assemble(
    code_bits: int,
    rows: dict[str, np.ndarray],
    other_images: dict[int, str],
    video_paths: list[str],
    video_ids: list[str],
    video_parts: np.ndarray,
    mih_min_rows: int | None = None,
    mih_bits: int | None = None,
) -> Segment:
    """A segment from unsorted per-row arrays (``ROW_ARRAYS``) and its inputs' table.

    ``other_images``: row -> image path for the rows whose flag is 2. Rows are sorted by
    keyframe id here (a stable sort: runs that are already sorted merge in linear time).
    """
    order = np.argsort(rows["ids"], kind="stable")
    arrays = {name: rows[name][order] for name in row_arrays(rows)}
    new_row = np.empty(len(order), np.int64)
    new_row[order] = np.arange(len(order))
    moved = sorted((int(new_row[r]), p) for r, p in other_images.items())
    arrays["image_rows"] = np.array([r for r, _ in moved], np.int64)
    arrays["image_paths_offsets"], arrays["image_paths_data"] = pack_strings([p for _, p in moved])
    arrays["video_path_offsets"], arrays["video_path_data"] = pack_strings(video_paths)
    arrays["video_id_offsets"], arrays["video_id_data"] = pack_strings(video_ids)
    arrays["video_rows"] = np.bincount(arrays["video"], minlength=len(video_paths)).astype(np.int64)
    arrays["video_part"] = np.asarray(video_parts, np.int64).reshape(len(video_paths), 2)
    if len(order) >= (MIH_MIN_ROWS if mih_min_rows is None else mih_min_rows):
        arrays.update(mih.build_tables(arrays["codes"], code_bits, mih_bits))
    return Segment(code_bits, arrays)


def from_arrow(table, code_bits: int, parts: dict[str, tuple[int, int, int]]) -> Segment:
    """A segment of a keyframes table (``IndexStore.read_arrow`` columns, codes included).

    ``parts``: video_path -> fingerprint of the keyframes part its rows were read from.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from vidhash.index.store.codes import codes_from_arrow

    n = table.num_rows
    width = 8 * words(code_bits)
    codes = np.zeros((n, width), np.uint8)
    raw = codes_from_arrow(table.column("code"))
    codes[:, : raw.shape[1]] = raw
    encoded = pc.dictionary_encode(table.column("video_path")).combine_chunks()
    paths = encoded.dictionary.to_pylist()
    video = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    first = np.zeros(len(paths), np.int64)
    first[video[::-1]] = np.arange(n - 1, -1, -1)  # each input's first row
    ids_of_video = table.column("video_id").take(pa.array(first)).to_pylist() if n else []
    rows: dict[str, np.ndarray] = {
        "codes": codes,
        "ids": strings_column(table.column("keyframe_id")),
        "video": video,
        "pts": table.column("pts_time").to_numpy().astype(np.float64),
    }
    for name, dtype in NULLS.items():
        values = np.full(n, np.iinfo(dtype).min, dtype)
        if name in table.column_names:
            column = table.column(name).cast(pa.from_numpy_dtype(dtype))
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            values[valid] = pc.fill_null(column, 0).to_numpy()[valid]
        rows[name] = values
    # Plain strings: tables from pandas carry large_string, which the join does not mix.
    ids = table.column("keyframe_id").cast(pa.string())
    if "image_path" in table.column_names:
        image = table.column("image_path").cast(pa.string())
    else:
        image = pa.nulls(n, pa.string())
    expected = pc.binary_join_element_wise(
        "images/", pc.utf8_slice_codeunits(ids, 0, 16), "/", ids, ".jpg", ""
    )
    standard = pc.fill_null(pc.equal(image, expected), False).to_numpy(zero_copy_only=False)
    present = image.is_valid().to_numpy(zero_copy_only=False)
    rows["image"] = np.where(standard, 1, np.where(present, 2, 0)).astype(np.uint8)
    if "descriptor" in table.column_names:
        rows["desc"] = descriptors_from_arrow(table.column("descriptor"))
    odd = np.flatnonzero(rows["image"] == 2)
    other = dict(zip(odd.tolist(), image.take(pa.array(odd)).to_pylist(), strict=True))
    video_parts = np.array([parts[p] for p in paths], np.int64).reshape(len(paths), 2)
    return assemble(code_bits, rows, other, paths, ids_of_video, video_parts)


def descriptors_from_arrow(column) -> np.ndarray:
    """A ``descriptor`` column (fixed-size binary of float16 bytes) as (n, D) float16."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    width = column.type.byte_width
    data = np.frombuffer(column.buffers()[1], np.uint8)[
        column.offset * width : (column.offset + len(column)) * width
    ]
    return data.view("<f2").reshape(len(column), width // 2).astype(np.float16)


def merge(pieces: list[tuple[Segment, np.ndarray]], code_bits: int) -> Segment:
    """One segment of the live rows of several (segment, dead video numbers) pieces."""
    names = row_arrays(pieces[0][0].arrays) if pieces else ROW_ARRAYS
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    other: dict[int, str] = {}
    paths: list[str] = []
    ids: list[str] = []
    video_parts: list[np.ndarray] = []
    offset = 0
    for seg, dead in pieces:
        keep_video = np.ones(seg.n_videos, bool)
        keep_video[np.asarray(dead, np.int64)] = False
        renumber = np.cumsum(keep_video) - 1 + len(paths)
        live = np.flatnonzero(keep_video[seg.video])
        for name in names:
            rows[name].append(np.asarray(seg.arrays[name][live]))
        rows["video"][-1] = renumber[seg.video[live]].astype(np.int32)
        odd = np.flatnonzero(seg.arrays["image"][live] == 2)
        for r in odd.tolist():
            other[offset + r] = seg.image_path(int(live[r]))
        for vno in np.flatnonzero(keep_video).tolist():
            paths.append(seg.video_path(vno))
            ids.append(seg.video_id(vno))
        video_parts.append(seg.arrays["video_part"][keep_video])
        offset += len(live)
    joined = {name: _concat(arrays) for name, arrays in rows.items()}
    parts = np.concatenate(video_parts) if video_parts else np.zeros((0, 2), np.int64)
    return assemble(code_bits, joined, other, paths, ids, parts)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if arrays and arrays[0].dtype.kind == "S":
        width = max(a.dtype.itemsize for a in arrays)
        arrays = [a.astype(f"S{width}") for a in arrays]
    return np.concatenate(arrays)
