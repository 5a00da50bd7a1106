"""The index layer: stores bytes, knows nothing of networks (never imports torch).

- ``codes``: the one code layout (``np.packbits`` order, unpadded, padded to 64 bits only
  for search);
- ``paths``: where things are (no pyarrow); ``layout``: schemas, Parquet reads and writes;
  ``parts``: commit records, recovery, checks; ``owners``: one owner per content;
  ``images``: keyframe JPEGs; ``store``: ``IndexStore``;
- the search file: ``arrayfile`` (memory-mapped array files), ``segment`` (rows sorted by
  keyframe id), ``searchfile`` (manifest, fingerprint, what an open sees), ``searchwriter``
  (kept at every commit, repaired when stale);
- search: ``mih`` (multi-index hashing), ``engine`` (exact top-k and radius over segments),
  ``search`` (``Index``; ``vidhash.Index`` adds queries), ``frame`` (rows as pandas);
- ``annotate``: concept labels from a CSV; ``sheet``: contact sheets of results.

Submodules are imported explicitly, so ``import vidhash.index`` stays cheap.
"""
