"""The Parquet store: what a commit writes (an index, or an extract folder's tables).

Contracts (docs/SCHEMA.md has the tables column by column):

- The Parquet tables are the source of truth; pandas, pyarrow and DuckDB read them as is.
- An input's keyframes part and images are written before its videos part, which is its
  commit record; a writer holds ``ROOT/.lock``; a rerun redoes exactly what was not
  committed (``parts``).
- In an index each content has one owner, its smallest path (``owners``); an extract
  folder keeps every copy.
- Nothing here imports :mod:`vidhash.index.search`. A file derived from the tables follows
  their commits through the ``Keeper`` that :meth:`IndexTables.new_keeper
  <vidhash.index.store.store.IndexTables.new_keeper>` returns (none here): the search room
  plugs the search file's writer in there (:class:`vidhash.index.search.writer.IndexStore`).

Submodules are imported explicitly; ``paths`` and ``codes`` load no pyarrow.
"""
