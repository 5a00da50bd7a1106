"""The ASGI application: JSON API and the search page over one index.

Contracts:

* ``create_app(index_dir)`` opens the index at once (so a missing index is an error before
  any server starts) and returns a FastAPI app; a watcher thread, started and stopped by
  the app's lifespan, swaps in a fresh index when the files change (``snapshot.py``).
  Each request takes the current snapshot once and uses only it.
* Every search is ``Index.search`` / ``Index.search_ids`` on the request's snapshot
  (``snapshot.py``): hits ordered as ``vidhash search`` orders them, each with its Hamming
  ``distance`` and descriptor ``score`` (null when codes only). ``rerank=false`` asks for
  the pure Hamming ranking; an index without descriptors answers codes-only and says so
  in ``note``.
* Keyframe searches never touch the model. Image searches decode and embed in worker
  threads (``query.py``: the index's own model, identity-checked, one lock).
* Every refusal is a 4xx with a JSON body ``{"error": "<one line>"}``; an unexpected
  failure is a 500 with the same shape (the traceback goes to the server log). The
  server keeps serving after either.
* The page (``static/``) is plain HTML/CSS/JS, served by the package with a
  Content-Security-Policy that allows this origin only: it works offline.
* The routes are in ``routes.py`` (state from ``request.app.state``); this module only
  wires the app: its state, the routes, the static files, the page headers, the error
  handlers and the lifespan.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidhash.serve import validate
from vidhash.serve.query import QueryEncoder
from vidhash.serve.routes import STATIC, Settings, router
from vidhash.serve.snapshot import IndexHolder
from vidhash.serve.validate import ApiError

log = logging.getLogger("vidhash.serve")

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'"
    ),
}


def create_app(
    index_dir: str | Path,
    *,
    max_upload_bytes: int = 10 << 20,
    max_pixels: int = 40_000_000,
    poll_seconds: float = 1.0,
    preload_model: bool = True,
    search_threads: int = 1,
    inline_max_keyframes: int = 1_000_000,
) -> FastAPI:
    """The app serving ``index_dir``. Raises ``IndexMissingError`` when there is no index.

    ``search_threads`` is FAISS's OpenMP team size for one search: one query gains nothing
    from a team, concurrent requests already spread over cores, and on a busy machine a
    team of 2 made a 0.15 ms search take ~20 ms (docs/SERVE.md). Keyframe searches on
    indexes up to ``inline_max_keyframes`` run on the event loop (well under a millisecond
    each, cheaper than a hop to a worker thread, which under load queues behind the GIL);
    larger ones, and everything touching the model, run in worker threads.
    """
    holder = IndexHolder(index_dir, poll_seconds=poll_seconds)  # opens the index now
    app = FastAPI(
        title="vidhash",
        summary="Search an index of hashed video keyframes by keyframe or by image.",
        version=_version(),
        lifespan=_lifespan,
    )
    app.state.holder = holder
    app.state.encoder = QueryEncoder(index_dir)
    app.state.settings = Settings(
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        preload_model=preload_model,
        search_threads=search_threads,
        inline_max_keyframes=inline_max_keyframes,
    )
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.add_middleware(PageHeaders)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Watch the index while serving, and (``preload_model``) load the model in the
    background, so the first image query need not wait for it."""
    holder: IndexHolder = app.state.holder
    holder.start()
    if app.state.settings.preload_model:
        meta = holder.snapshot.index.meta
        threading.Thread(target=app.state.encoder.preload, args=(meta,), daemon=True).start()
    yield
    holder.stop()


class PageHeaders:
    """Pure ASGI middleware: the page and its files get :data:`PAGE_HEADERS` (the API not)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/static/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                names = {k for k, _ in extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error body is ``{"error": "<one line>"}``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _crashed)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such page or endpoint: {request.url.path}"
    return JSONResponse(
        {"error": validate.one_line(message)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
    message = f"{where}: {first.get('msg', 'invalid value')}"
    if "input" in first and first["input"] is not None:
        message += f", got {first['input']!r:.60}"
    return JSONResponse({"error": validate.one_line(message)}, status_code=422)


async def _crashed(request: Request, exc: Exception) -> JSONResponse:
    log.exception("error serving %s", request.url.path)
    return JSONResponse(
        {"error": f"internal error ({type(exc).__name__}); see the server log"},
        status_code=500,
    )


def _version() -> str:
    from vidhash import __version__

    return __version__
