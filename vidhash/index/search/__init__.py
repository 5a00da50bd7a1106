"""The search side: the search file (``INDEX/search/``) and the engines that read it.

Contracts:

- This room reads what the store (:mod:`vidhash.index.store`) commits and may import it;
  the store never imports this room. The one place where a commit reaches in here is the
  store's ``Keeper`` hook: :class:`~vidhash.index.search.writer.IndexStore` is the store's
  tables with :class:`~vidhash.index.search.writer.SearchWriter` as their keeper, so the
  search file is kept at every commit (old or new after a kill, never torn).
- Search results never depend on the search file: exactly the flat scan's over the
  committed rows, by (distance, keyframe id). The reader (``file``) never writes or locks;
  an open that finds the file stale repairs it (``repair``) before searching.
- An ``Index.open`` of a current file loads neither pandas, pyarrow nor FAISS.

Submodules are imported explicitly, so importing one engine loads no writer.
"""
