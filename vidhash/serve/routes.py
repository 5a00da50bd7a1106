"""The routes: the page and the JSON API, as module-level functions on one ``APIRouter``.

Contracts:

* A route keeps no state of its own: it reads the app's from ``request.app.state``
  (``holder``, the :class:`~vidhash.serve.snapshot.IndexHolder`; ``encoder``, the
  :class:`~vidhash.serve.query.QueryEncoder`; ``settings``, the :class:`Settings`
  ``create_app`` was given), and takes the current snapshot once, at its start, using only
  that one for the whole request.
* Every search is ``Index.search`` / ``Index.search_ids`` on that snapshot, run with
  FAISS's OpenMP team set to ``Settings.search_threads`` in the thread that searches.
  Keyframe searches on indexes up to ``Settings.inline_max_keyframes`` run on the event
  loop; larger ones, decoding and embedding an upload, and image searches run in worker
  threads. A ``KeyError`` from the search (a concept gone meanwhile) is a 404.
* Refusals are :class:`~vidhash.serve.validate.ApiError`; ``app.py`` turns them, and
  every other error, into ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from vidhash.index.search.index import Hit
from vidhash.serve import validate, views
from vidhash.serve.query import ModelUnavailable, QueryEncoder, UploadError, decode_upload
from vidhash.serve.snapshot import IndexHolder, Snapshot
from vidhash.serve.upload import read_image_field
from vidhash.serve.validate import MAX_K, ApiError

if TYPE_CHECKING:
    import numpy as np

STATIC = Path(__file__).parent / "static"
DEFAULT_K = 20
K_QUERY = Query(DEFAULT_K, ge=1, le=MAX_K, description=f"Hits to return, 1..{MAX_K}.")
CONCEPT_QUERY = Query(None, description="Only keyframes labelled with this concept.")
RERANK_QUERY = Query(
    True,
    description="false: the pure Hamming ranking (codes only); true: re-rank the Hamming "
    "candidates by descriptor where the index stores descriptors.",
)
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

router = APIRouter()


@dataclass(frozen=True)
class Settings:
    """The app's limits and tuning (``create_app``'s keywords), kept in ``app.state``."""

    max_upload_bytes: int
    max_pixels: int
    preload_model: bool
    search_threads: int
    inline_max_keyframes: int


def _holder(request: Request) -> IndexHolder:
    return request.app.state.holder


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _encoder(request: Request) -> QueryEncoder:
    return request.app.state.encoder


def _searched(threads: int, find: Callable[[], list[Hit]]) -> list[Hit]:
    """OpenMP's team size is a per-thread setting: set it in the thread that searches."""
    faiss.omp_set_num_threads(threads)
    try:
        return find()
    except KeyError as exc:  # a concept gone between the check and the search
        raise ApiError(404, str(exc.args[0]) if exc.args else "not in the index") from None


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/stats", summary="What the index holds")
async def stats(request: Request) -> JSONResponse:
    holder, encoder = _holder(request), _encoder(request)
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
            "max_upload_bytes": _settings(request).max_upload_bytes,
        }
    )


@router.get("/api/concepts", summary="The concepts, with how many keyframes carry each")
async def concepts(request: Request) -> JSONResponse:
    snap = _holder(request).snapshot
    return JSONResponse(
        {
            "concepts": [
                {"name": c.name, "group": c.group, "keyframes": c.keyframes}
                for c in snap.concepts.values()
            ]
        }
    )


@router.get("/api/search", summary="Top-k keyframes nearest to an indexed keyframe")
async def search_keyframe(
    request: Request,
    keyframe: str = Query(..., description="The query keyframe's id."),
    k: int = K_QUERY,
    concept: str | None = CONCEPT_QUERY,
    exclude_same_video: bool = Query(False, description="Leave out the query's video."),
    rerank: bool = RERANK_QUERY,
) -> JSONResponse:
    snap, settings = _holder(request).snapshot, _settings(request)
    kid = validate.keyframe_id(keyframe)
    views.check_concept(snap, concept)
    record = views.indexed(snap, kid)
    code = snap.index.code_of(kid)
    started = time.perf_counter()
    find = partial(
        snap.index.search_ids,
        kid,
        k,
        exclude_same_video=exclude_same_video,
        rerank=rerank,
        concept=concept,
    )
    if len(snap) <= settings.inline_max_keyframes:  # sub-millisecond: a thread hop costs more
        hits = _searched(settings.search_threads, find)
    else:
        hits = await run_in_threadpool(_searched, settings.search_threads, find)
    query = {**views.keyframe(record), "code": code.tobytes().hex()}
    asked = {"k": k, "concept": concept, "exclude_same_video": exclude_same_video, "rerank": rerank}
    two_stage = rerank and snap.note is None  # the stored descriptor is the query's
    return views.results(snap, query, hits, asked, two_stage, started)


@router.post(
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
    snap, settings = _holder(request).snapshot, _settings(request)
    if exclude_same_video:
        raise ApiError(400, "exclude_same_video applies to keyframe queries only")
    views.check_concept(snap, concept)
    data, filename = await read_image_field(request, settings.max_upload_bytes)
    started = time.perf_counter()
    code, descriptor = await _embed_upload(request, data, snap)
    find = partial(
        snap.index.search, code, k, descriptors=descriptor, rerank=rerank, concept=concept
    )
    hits = await run_in_threadpool(_searched, settings.search_threads, find)
    query = {"image": filename, "code": code.tobytes().hex()}
    asked = {"k": k, "concept": concept, "exclude_same_video": False, "rerank": rerank}
    two_stage = rerank and snap.note is None and descriptor is not None
    return views.results(snap, query, hits, asked, two_stage, started)


async def _embed_upload(
    request: Request, data: bytes, snap: Snapshot
) -> tuple[np.ndarray, np.ndarray | None]:
    """(code, descriptor or None) of the uploaded bytes, decoded and embedded in worker
    threads; an unreadable upload or an unloadable model is a refusal, not a crash."""
    try:
        pixels = await run_in_threadpool(decode_upload, data, _settings(request).max_pixels)
        return await run_in_threadpool(_encoder(request).embed, pixels, snap.index.meta)
    except UploadError as exc:
        raise ApiError(exc.status, str(exc)) from None
    except ModelUnavailable as exc:
        raise ApiError(503, str(exc)) from None


@router.get(
    "/api/keyframes/{name:path}",
    summary="A keyframe's JPEG: /api/keyframes/<keyframe id>.jpg",
    response_class=FileResponse,
)
async def keyframe_image(name: str, request: Request) -> FileResponse:
    snap = _holder(request).snapshot
    kid = validate.keyframe_image_name(name, request.scope.get("raw_path") or b"")
    recorded = views.indexed(snap, kid)["image_path"]
    path = validate.keyframe_image_path(snap.index.root, recorded, kid)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/videos", summary="The indexed videos and images, by path")
async def videos(
    request: Request, offset: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=MAX_K)
) -> JSONResponse:
    snap = _holder(request).snapshot
    shown = snap.video_order[offset : offset + limit]
    return JSONResponse(
        {
            "total": len(snap.video_order),
            "offset": offset,
            "videos": [views.video(snap, v) for v in shown],
        }
    )


@router.get("/api/videos/{video_id}/keyframes", summary="One video's keyframes in time order")
async def video_keyframes(video_id: str, request: Request) -> JSONResponse:
    snap = _holder(request).snapshot
    vid = validate.video_id(video_id)
    rows = snap.videos.get(vid)
    if rows is None:
        raise ApiError(404, f"video {vid[:16]}... is not in the index")
    keyframes = [views.keyframe(views.listed(snap, r)) for r in rows.tolist()]
    return JSONResponse({"video": views.video(snap, vid), "keyframes": keyframes})
