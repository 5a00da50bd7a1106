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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidhash.index.search.index import Hit
from vidhash.serve import validate, views
from vidhash.serve.query import ModelUnavailable, QueryEncoder, UploadError, decode_upload
from vidhash.serve.snapshot import IndexHolder
from vidhash.serve.upload import read_image_field
from vidhash.serve.validate import MAX_K, ApiError

log = logging.getLogger("vidhash.serve")

STATIC = Path(__file__).parent / "static"
DEFAULT_K = 20
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'"
    ),
}
K_QUERY = Query(DEFAULT_K, ge=1, le=MAX_K, description=f"Hits to return, 1..{MAX_K}.")
CONCEPT_QUERY = Query(None, description="Only keyframes labelled with this concept.")
RERANK_QUERY = Query(
    True,
    description="false: the pure Hamming ranking (codes only); true: re-rank the Hamming "
    "candidates by descriptor where the index stores descriptors.",
)


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
    import faiss

    holder = IndexHolder(index_dir, poll_seconds=poll_seconds)
    encoder = QueryEncoder(index_dir)

    def search(find: Callable[[], list[Hit]]) -> list[Hit]:
        """OpenMP's team size is a per-thread setting: set it in the thread that searches."""
        faiss.omp_set_num_threads(search_threads)
        try:
            return find()
        except KeyError as exc:  # a concept gone between the check and the search
            raise ApiError(404, str(exc.args[0]) if exc.args else "not in the index") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        holder.start()
        if preload_model:
            meta = holder.snapshot.index.meta
            threading.Thread(target=encoder.preload, args=(meta,), daemon=True).start()
        yield
        holder.stop()

    app = FastAPI(
        title="vidhash",
        summary="Search an index of hashed video keyframes by keyframe or by image.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.encoder = encoder
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(PageHeaders)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/stats", summary="What the index holds")
    async def stats() -> JSONResponse:
        snap = holder.snapshot
        meta = snap.index.meta
        return JSONResponse(
            {
                "index": str(holder.root),
                "keyframes": len(snap),
                "videos": len(snap.videos),
                "concepts": len(snap.concepts),
                "code_bits": snap.index.code_bits,
                "descriptor_dims": snap.index.descriptor_dims,
                "note": snap.note,
                "model_name": meta.get("model_name"),
                "model_id": meta.get("model_id"),
                "model_status": encoder.status,
                "model_error": encoder.error,
                "generation": snap.generation,
                "opened_at": snap.opened_at,
                "stale": holder.stale,
                "max_k": MAX_K,
                "max_upload_bytes": max_upload_bytes,
            }
        )

    @app.get("/api/concepts", summary="The concepts, with how many keyframes carry each")
    async def concepts() -> JSONResponse:
        snap = holder.snapshot
        return JSONResponse(
            {
                "concepts": [
                    {"name": c.name, "group": c.group, "keyframes": c.keyframes}
                    for c in snap.concepts.values()
                ]
            }
        )

    @app.get("/api/search", summary="Top-k keyframes nearest to an indexed keyframe")
    async def search_keyframe(
        keyframe: str = Query(..., description="The query keyframe's id."),
        k: int = K_QUERY,
        concept: str | None = CONCEPT_QUERY,
        exclude_same_video: bool = Query(False, description="Leave out the query's video."),
        rerank: bool = RERANK_QUERY,
    ) -> JSONResponse:
        snap = holder.snapshot
        kid = validate.keyframe_id(keyframe)
        views.check_concept(snap, concept)
        record = views.indexed(snap, kid)
        code = snap.index.code_of(kid)
        started = time.perf_counter()

        def find() -> list[Hit]:
            return snap.index.search_ids(
                kid, k, exclude_same_video=exclude_same_video, rerank=rerank, concept=concept
            )

        if len(snap) <= inline_max_keyframes:  # sub-millisecond: a thread hop costs more
            hits = search(find)
        else:
            hits = await run_in_threadpool(search, find)
        query = {**views.keyframe(record), "code": code.tobytes().hex()}
        asked = {"k": k, "concept": concept, "exclude_same_video": exclude_same_video}
        asked["rerank"] = rerank
        two_stage = rerank and snap.note is None  # the stored descriptor is the query's
        return views.results(snap, query, hits, asked, two_stage, started)

    @app.post(
        "/api/search",
        summary="Top-k keyframes nearest to an uploaded image",
        description="Send the image as multipart/form-data in a field named `image`; "
        "it is embedded (code and descriptor) with the index's own model.",
        openapi_extra=_UPLOAD_SCHEMA,
    )
    async def search_image(
        request: Request,
        k: int = K_QUERY,
        concept: str | None = CONCEPT_QUERY,
        exclude_same_video: bool = Query(False, description="Not for image queries."),
        rerank: bool = RERANK_QUERY,
    ) -> JSONResponse:
        snap = holder.snapshot
        if exclude_same_video:
            raise ApiError(400, "exclude_same_video applies to keyframe queries only")
        views.check_concept(snap, concept)
        data, filename = await read_image_field(request, max_upload_bytes)
        started = time.perf_counter()
        try:
            pixels = await run_in_threadpool(decode_upload, data, max_pixels)
            code, descriptor = await run_in_threadpool(encoder.embed, pixels, snap.index.meta)
        except UploadError as exc:
            raise ApiError(exc.status, str(exc)) from None
        except ModelUnavailable as exc:
            raise ApiError(503, str(exc)) from None

        def find() -> list[Hit]:
            return snap.index.search(
                code, k, descriptors=descriptor, rerank=rerank, concept=concept
            )

        hits = await run_in_threadpool(search, find)
        query = {"image": filename, "code": code.tobytes().hex()}
        asked = {"k": k, "concept": concept, "exclude_same_video": False, "rerank": rerank}
        two_stage = rerank and snap.note is None and descriptor is not None
        return views.results(snap, query, hits, asked, two_stage, started)

    @app.get(
        "/api/keyframes/{name:path}",
        summary="A keyframe's JPEG: /api/keyframes/<keyframe id>.jpg",
        response_class=FileResponse,
    )
    async def keyframe_image(name: str, request: Request) -> FileResponse:
        snap = holder.snapshot
        kid = validate.keyframe_image_name(name, request.scope.get("raw_path") or b"")
        recorded = views.indexed(snap, kid)["image_path"]
        path = validate.keyframe_image_path(snap.index.root, recorded, kid)
        return FileResponse(
            path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}
        )

    @app.get("/api/videos", summary="The indexed videos and images, by path")
    async def videos(
        offset: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=MAX_K)
    ) -> JSONResponse:
        snap = holder.snapshot
        page = snap.video_order[offset : offset + limit]
        return JSONResponse(
            {
                "total": len(snap.video_order),
                "offset": offset,
                "videos": [views.video(snap, v) for v in page],
            }
        )

    @app.get("/api/videos/{video_id}/keyframes", summary="One video's keyframes in time order")
    async def video_keyframes(video_id: str) -> JSONResponse:
        snap = holder.snapshot
        vid = validate.video_id(video_id)
        rows = snap.videos.get(vid)
        if rows is None:
            raise ApiError(404, f"video {vid[:16]}... is not in the index")
        keyframes = [views.keyframe(views.listed(snap, r)) for r in rows.tolist()]
        return JSONResponse({"video": views.video(snap, vid), "keyframes": keyframes})

    return app


class PageHeaders:
    """Pure ASGI middleware: the page and its files get :data:`PAGE_HEADERS` (the API not)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/static/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                names = {k for k, _ in extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error body is ``{"error": "<one line>"}``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page or endpoint: {request.url.path}"
        return JSONResponse(
            {"error": validate.one_line(message)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        message = f"{where}: {first.get('msg', 'invalid value')}"
        if "input" in first and first["input"] is not None:
            message += f", got {first['input']!r:.60}"
        return JSONResponse({"error": validate.one_line(message)}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s", request.url.path)
        return JSONResponse(
            {"error": f"internal error ({type(exc).__name__}); see the server log"},
            status_code=500,
        )


def _version() -> str:
    from vidhash import __version__

    return __version__


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
