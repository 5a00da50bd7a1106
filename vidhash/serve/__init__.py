"""`vidhash serve`: a local web service over one index (JSON API + a search page).

``create_app(index_dir)`` (in ``app.py``) builds the ASGI app around the routes of
``routes.py``; ``vidhash.cli.serve`` runs it under uvicorn. The index is opened once and
reopened when its files change (``snapshot.py``) and every search is ``Index.search`` /
``Index.search_ids`` on it; image queries are embedded by the index's own model
(``query.py``); requests are validated in ``validate.py`` and ``upload.py``; answers are
shaped in ``views.py``; the page is ``static/``. See docs/SERVE.md.
Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing vidhash.serve.query (for its encoder) does not need FastAPI.
    if name == "create_app":
        from vidhash.serve.app import create_app

        return create_app
    raise AttributeError(name)
