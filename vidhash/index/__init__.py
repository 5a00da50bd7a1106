"""The index layer: stores bytes, knows nothing of networks (never imports torch).

Two rooms, one arrow between them (``tests/test_index_layers.py`` enforces it)::

    search/  ---imports--->  store/
    the search file and its      the Parquet store: what a commit writes;
    engines: what reads what     imports nothing of search/ (a commit reaches
    the store commits            the search file only through a Keeper hook)

- ``store/``: ``paths`` (names, no pyarrow), ``codes`` (the one code layout), ``layout``
  (schemas, Parquet reads and writes), ``images`` (keyframe JPEGs), ``parts``
  (``PartStore``: commit records, recovery, checks), ``owners`` (``OwnedParts``: one owner
  per content), ``store`` (``IndexTables``: meta, code columns, annotations, and the
  ``Keeper`` hook through which a derived file follows every commit).
- ``search/``: ``arrayfile``, ``mih``, ``segment`` (the file's parts), ``file`` (manifest,
  fingerprint, the reader), ``writer`` (``SearchWriter``, the tables' keeper, and
  ``IndexStore``: the tables with it plugged in), ``repair`` (a stale file on open),
  ``engine``, ``flat``, ``queries``, ``index`` (``Index``; ``vidhash.Index`` adds image and
  frame queries), ``frame`` (rows as pandas), ``annotate`` (labels, written through
  ``IndexStore``), ``sheet`` (contact sheets of results).

The store calls the search file's writer only through the ``Keeper`` it is given by its
subclass ``IndexStore``, so the store room never imports the search room. The two public
names are here: ``vidhash.index.Index`` and ``vidhash.index.IndexStore`` (the index writer
that ``vidhash index`` and ``vidhash annotate`` open). They and every submodule load on
first use, so ``import vidhash.index`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vidhash.index.search.index import Index
    from vidhash.index.search.writer import IndexStore

__all__ = ["Index", "IndexStore"]


def __getattr__(name: str) -> type:
    # Lazy: an Index.open must not load pyarrow through the writer, nor the writer torch.
    if name == "Index":
        from vidhash.index.search.index import Index

        return Index
    if name == "IndexStore":
        from vidhash.index.search.writer import IndexStore

        return IndexStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
