"""vidhash: turn folders of video into a searchable index of keyframes.

Data path: ``video/`` (decode, sample) -> ``transforms`` (crop+resize) -> ``models/``
(backbone, PSP, hash head) -> ``index/`` (Parquet store, Hamming search) -> ``eval/``
(MAP@K, reports). ``ingest/``, ``query`` and ``cli/`` compose them.
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["Index", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import vidhash` does not pull in faiss/pyarrow for the CLI's --help.
    if name == "Index":
        from vidhash.query import Index  # the index layer's Index, plus image/video queries

        return Index
    raise AttributeError(name)
