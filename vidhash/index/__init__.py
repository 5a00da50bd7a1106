"""The index layer: stores bytes, knows nothing of networks (never imports torch).

- ``codes``: the one code layout (``np.packbits`` order, unpadded, padded to 64 bits only
  for search);
- ``layout``: schemas and where files live; ``parts``: commit records, recovery, checks;
  ``owners``: one owner per content; ``images``: keyframe JPEGs; ``store``: ``IndexStore``;
- ``search``: exact Hamming top-k over FAISS (``Index``; ``vidhash.Index`` adds queries);
- ``annotate``: concept labels from a CSV; ``sheet``: contact sheets of results.

Submodules are imported explicitly, so ``import vidhash.index`` stays cheap.
"""
