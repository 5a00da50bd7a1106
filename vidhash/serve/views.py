"""The JSON shapes of the API: a keyframe, a hit, a video, a search answer.

Contract: a keyframe looks the same wherever it appears (a hit, a query, a strip frame, a
video's cover); a hit adds its rank, Hamming ``distance`` and descriptor ``score`` (null
when the search was by codes only); every search answer says how it was ranked
(``two_stage``) and, for an index without descriptors, why not (``note``). Keyframe
records come from the ``Index`` (by id) or from the snapshot's listings (by row), never
from a lookup table of this module's own.
"""

from __future__ import annotations

import time
from pathlib import PurePath

from fastapi.responses import JSONResponse

from vidhash.index.search.index import Hit
from vidhash.serve.snapshot import Snapshot
from vidhash.serve.validate import ApiError, clock


def check_concept(snap: Snapshot, concept: str | None) -> None:
    if concept is not None and concept not in snap.concepts:
        raise ApiError(404, f"concept {concept!r:.80} is not in the index")


def indexed(snap: Snapshot, kid: str) -> dict:
    """The keyframe's row, from the ``Index``; 404 when it is not indexed."""
    try:
        found = snap.index.record(kid)
    except KeyError:
        raise ApiError(404, f"keyframe {kid} is not in the index") from None
    return {**found, "concepts": snap.index.concepts_of(kid)}


def listed(snap: Snapshot, row: int) -> dict:
    """A keyframe of the snapshot's listings (the videos and their strips)."""
    kid = snap.ids[row]
    return {
        "keyframe_id": kid,
        "video_id": snap.video_ids[row],
        "video_path": snap.video_paths[row],
        "pts_time": float(snap.pts[row]),
        "image_path": bool(snap.has_image[row]),
        "concepts": snap.index.concepts_of(kid),
    }


def keyframe(item: dict) -> dict:
    """What the page shows of one keyframe (a hit adds rank, distance and score)."""
    kid = item["keyframe_id"]
    pts = float(item["pts_time"])
    return {
        "keyframe_id": kid,
        "video_id": item["video_id"],
        "video_path": item["video_path"],
        "video_name": PurePath(item["video_path"]).name,
        "pts_time": pts,
        "time": clock(pts),
        "concepts": item["concepts"],
        "thumbnail_url": f"/api/keyframes/{kid}.jpg" if item["image_path"] else None,
    }


def hit_json(rank: int, hit: Hit) -> dict:
    """A hit: the keyframe plus its rank, Hamming distance and descriptor score."""
    return {"rank": rank, "distance": hit.distance, "score": hit.score, **keyframe(hit.to_dict())}


def video(snap: Snapshot, video_id: str) -> dict:
    rows = snap.videos[video_id]
    path = snap.video_paths[rows[0]]
    return {
        "video_id": video_id,
        "video_path": path,
        "video_name": PurePath(path).name,
        "keyframes": len(rows),
        "cover": keyframe(listed(snap, int(rows[0]))),
    }


def results(
    snap: Snapshot, query: dict, hits: list[Hit], asked: dict, two_stage: bool, started: float
) -> JSONResponse:
    """The answer: what was asked, how it was ranked (``two_stage``; ``note`` says why an
    index cannot re-rank) and the hits."""
    return JSONResponse(
        {
            "query": query,
            **asked,
            "two_stage": two_stage,
            "note": snap.note,
            "generation": snap.generation,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
            "hits": [hit_json(rank, h) for rank, h in enumerate(hits, 1)],
        }
    )
