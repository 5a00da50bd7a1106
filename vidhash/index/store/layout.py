"""What the tables hold: their schemas, and reading and writing Parquet parts.

One layout serves both outputs: ``vidhash index`` (codes, meta) and ``vidhash extract``
(the same tables without codes). Documented column by column in docs/SCHEMA.md::

    ROOT/meta/meta.parquet                 index only: the model that made the codes
    ROOT/videos/part-<key>.parquet         one row per input, any status (the commit record)
    ROOT/keyframes/part-<key>.parquet      the keyframes of one input
    ROOT/annotations/annotations.parquet   index only: concept labels
    ROOT/images/<hash16>/<keyframe_id>.jpg keyframe JPEGs
    ROOT/search/                           index only: the search file (codes for search)
    ROOT/.lock                             held by the one writer

``<key>`` is :func:`part_key` of the input's absolute path. Readers never see a file half
written: writes go to ``.tmp-*`` names (``vidhash.fsutil.atomic_path``) and are renamed.
Names and paths live in :mod:`vidhash.index.store.paths` (no pyarrow) and are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vidhash.fsutil import atomic_path
from vidhash.index.store.codes import code_nbytes
from vidhash.index.store.paths import (  # noqa: F401 - re-exported: the layout's names
    IMAGES_DIR,
    LOCK_NAME,
    PART_PREFIX,
    SEARCH_DIR,
    TABLES,
    image_relpath,
    is_index,
    part_key,
    parts,
)

log = logging.getLogger("vidhash.index")

STATUSES = ("ok", "partial", "failed", "skipped", "duplicate")
KINDS = ("video", "image", "other")
# Inputs whose keyframes live in the output (and so own their content hash).
PRIMARY_STATUSES = frozenset({"ok", "partial"})

META_SCHEMA = pa.schema(
    [
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string()),
        pa.field("model_config", pa.string()),
        pa.field("code_bits", pa.int16(), nullable=False),
        pa.field("vidhash_version", pa.string()),
        pa.field("created", pa.timestamp("ms", tz="UTC")),
        # Dimensions of the float16 descriptor beside each code; null or 0: codes only (an
        # index made before descriptors existed, or by a model without one).
        pa.field("descriptor_dims", pa.int16()),
    ]
)

VIDEOS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("content_hash", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("duration", pa.float64()),
        pa.field("n_keyframes", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        # The sampling options the keyframes were made with (JSON); other options redo.
        pa.field("sampling", pa.string()),
        pa.field("frame_rate", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("rotation", pa.int16()),
        pa.field("codec", pa.string()),
        pa.field("container", pa.string()),
    ]
)

ANNOTATIONS_SCHEMA = pa.schema(
    [
        pa.field("keyframe_id", pa.string(), nullable=False),
        pa.field("concept", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
    ]
)


def keyframes_schema(code_bits: int | None, descriptor_dims: int = 0) -> pa.Schema:
    """The keyframes table; ``code_bits=None`` is extract's table (no code columns).

    ``descriptor_dims``: an index whose model has a descriptor stores it per keyframe as
    ``descriptor``, the float16 values' little-endian bytes (``2 * dims`` bytes)."""
    fields = [
        pa.field("keyframe_id", pa.string(), nullable=False),
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("pts_time", pa.float64(), nullable=False),
        pa.field("frame_index", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("rotation", pa.int16()),
    ]
    if code_bits is not None:
        fields += [
            pa.field("code", pa.binary(code_nbytes(code_bits)), nullable=False),
            pa.field("code_bits", pa.int16(), nullable=False),
            pa.field("model_id", pa.string(), nullable=False),
        ]
        if descriptor_dims:
            fields.append(pa.field("descriptor", pa.binary(2 * descriptor_dims), nullable=False))
    return pa.schema([*fields, pa.field("image_path", pa.string())])


def read_parquet(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    table = pq.read_table(path)
    return table.cast(schema) if schema is not None else table


def write_parquet(table: pa.Table, final: Path) -> None:
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parts(
    paths: list[Path], schema: pa.Schema, columns: list[str] | None = None
) -> tuple[pa.Table, list[Path]]:
    """Many part files as one table (one multi-threaded scan; file by file on trouble).

    Returns the table and the files that could not be read. A file deleted since it was
    listed (an input dropped or redone meanwhile) is neither, so readers never fail on a
    concurrent writer.
    """
    schema = pa.schema([schema.field(c) for c in columns]) if columns else schema
    if not paths:
        return schema.empty_table(), []
    with contextlib.suppress(pa.ArrowException, OSError):
        dataset = ds.dataset([str(p) for p in paths], schema=schema, format="parquet")
        return dataset.to_table(), []
    tables, broken = [], []
    for p in paths:
        try:
            tables.append(pq.read_table(p, columns=schema.names).cast(schema))
        except FileNotFoundError:
            continue
        except (pa.ArrowException, OSError) as exc:
            log.warning("unreadable %s: %s", p, exc)
            broken.append(p)
    return (pa.concat_tables(tables) if tables else schema.empty_table()), broken


def unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
