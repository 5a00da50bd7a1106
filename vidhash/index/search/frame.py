"""The search file's rows as a pandas table (``Index.keyframes``), in row-number order.

Built from the segments alone, so it always agrees with the search it belongs to (a commit
made after the index was opened is not mixed in). The columns and their types are the
keyframes table's without the code columns: keyframe_id, video_id, video_path, pts_time,
frame_index, width, height, rotation, image_path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vidhash.index.search.segment import NULLS, Segment, unpack_string

COLUMNS = ("keyframe_id", "video_id", "video_path", "pts_time", *NULLS, "image_path")


def keyframes_frame(segments: list[Segment], dead: list[np.ndarray]) -> pd.DataFrame:
    tables = [_table(seg, d) for seg, d in zip(segments, dead, strict=True)]
    if not tables:
        return pd.DataFrame({name: [] for name in COLUMNS})
    frame = pa.concat_tables(tables).to_pandas()
    for name in ("video_id", "video_path"):  # plain strings, not categoricals
        frame[name] = frame[name].astype(object)
    return frame


def _strings(seg: Segment, name: str) -> pa.Array:
    a = seg.arrays
    offsets, data = a[f"{name}_offsets"], a[f"{name}_data"]
    return pa.array([unpack_string(offsets, data, v) for v in range(len(offsets) - 1)], pa.string())


def _table(seg: Segment, dead: np.ndarray) -> pa.Table:
    live = seg.live_mask(dead)
    rows = np.arange(len(seg)) if live is None else np.flatnonzero(live)
    a = seg.arrays
    ids = pa.array(np.asarray(seg.ids[rows]), pa.binary()).cast(pa.string())
    video = pa.array(np.asarray(seg.video[rows]), pa.int32())
    columns = {
        "keyframe_id": ids,
        "video_id": pa.DictionaryArray.from_arrays(video, _strings(seg, "video_id")),
        "video_path": pa.DictionaryArray.from_arrays(video, _strings(seg, "video_path")),
        "pts_time": pa.array(np.asarray(a["pts"][rows]), pa.float64()),
    }
    for name, dtype in NULLS.items():
        values = np.asarray(a[name][rows])
        columns[name] = pa.array(values, mask=values == np.iinfo(dtype).min)
    flags = np.asarray(a["image"][rows])
    standard = pc.binary_join_element_wise(
        "images/", pc.utf8_slice_codeunits(ids, 0, 16), "/", ids, ".jpg", ""
    )
    image = pc.if_else(pa.array(flags == 1), standard, pa.nulls(len(rows), pa.string()))
    other = np.flatnonzero(flags == 2)
    if len(other):
        paths = image.to_pylist()
        for i in other.tolist():
            paths[i] = seg.image_path(int(rows[i]))
        image = pa.array(paths, pa.string())
    columns["image_path"] = image
    return pa.table(columns)
