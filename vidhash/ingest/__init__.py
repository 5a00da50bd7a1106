"""One ingest engine for ``vidhash extract`` and ``vidhash index``.

options (sampling vs feeding) -> plan (what to do with each input) -> frames (an input's
keyframes, one error formatter) -> run (a distributor spreads the frame source: local
threads or Ray, long inputs cut into parts by time (split); [a model]; the feed joins
each input's parts and a sink commits it) -> one ``Summary``. The sinks are the extract
folder and the index (:mod:`vidhash.ingest.sinks`).

    from vidhash.ingest import IngestOptions, build_index, extract
    extract("videos/", "frames/", IngestOptions(every=1.0))
    build_index("videos/", "index/", "default")
"""

from vidhash.ingest.options import IngestOptions
from vidhash.ingest.run import LocalDistributor, Summary, build_index, extract

__all__ = ["IngestOptions", "LocalDistributor", "Summary", "build_index", "extract"]
