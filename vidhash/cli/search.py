"""`vidhash search INDEX`: two-stage top-k for an image, a keyframe, or a video frame.

The codes' exact Hamming candidates are re-ranked by the stored descriptors
(``vidhash.index.search.index``); ``--codes-only`` gives the pure Hamming ranking. An index
built before descriptors existed searches by codes and says once, on stderr, how to
rebuild it.

A keyframe query needs no model: it opens the index layer's ``Index`` only (the search
file, numpy), so a one-off call on a large index stays well under a second; image and
video queries load ``vidhash.query`` and the index's model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vidhash.errors import InputError, UsageError
from vidhash.video.stream import backend_names

if TYPE_CHECKING:  # numpy and the index layer load only when a query runs
    import numpy as np

    from vidhash.index.search.index import Hit
    from vidhash.index.search.index import Index as SearchIndex


@click.command("search")
@click.argument("index_dir", metavar="INDEX", type=click.Path())
@click.option("--image", type=click.Path(), help="Query with a picture.")
@click.option("--keyframe", "keyframe_id", help="Query with an indexed keyframe's id.")
@click.option("--video", type=click.Path(), help="Query with a video's frame (needs --at).")
@click.option("--at", help="Seconds into --video (its pts clock).")
@click.option("-k", "--topk", "k", default="10", show_default=True, help="Hits to return.")
@click.option("--radius", help="Only hits within this Hamming distance.")
@click.option("--codes-only", is_flag=True, help="Rank by Hamming distance alone (no re-ranking).")
@click.option(
    "--candidates",
    help="Hamming candidates the descriptors re-rank "
    "[vidhash.index.search.index.RERANK_CANDIDATES].",
)
@click.option("--concept", help="Only keyframes labelled with this concept.")
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default="pyav",
    show_default=True,
    help="Decoder for --video.",
)
@click.option("--exclude-same-video", is_flag=True, help="With --keyframe: skip its own video.")
@click.option("--model", help="Checkpoint to encode the query [the index's model].")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option("--sheet", type=click.Path(), help="Write a contact sheet (.jpg or .png).")
def command(
    index_dir: str,
    image: str | None,
    keyframe_id: str | None,
    video: str | None,
    at: str | None,
    k: str,
    radius: str | None,
    codes_only: bool,
    candidates: str | None,
    concept: str | None,
    backend: str,
    exclude_same_video: bool,
    model: str | None,
    device: str,
    as_json: bool,
    sheet: str | None,
) -> None:
    """Top-k in INDEX: Hamming candidates re-ranked by descriptor similarity.

    Give one query: --image PATH, --keyframe ID, or --video PATH --at SECONDS.
    """
    ranking = _Ranking.parse(k, radius, candidates, codes_only, concept)
    seconds = None if at is None else _number("--at", at, float, minimum=0)
    _check_flags(image, keyframe_id, video, seconds, exclude_same_video, sheet)
    if keyframe_id is not None:
        found = _by_keyframe(index_dir, keyframe_id, ranking, exclude_same_video, sheet)
    else:
        pixels, query = _query_pixels(image, video, seconds, backend)
        found = _by_pixels(index_dir, pixels, query, ranking, model, device)
    if not codes_only and not found.index.descriptor_dims:
        from vidhash.index.search.index import NO_DESCRIPTORS

        click.echo(f"note: {index_dir}: {NO_DESCRIPTORS}", err=True)
    if sheet is not None:
        _write_sheet(sheet, found.pixels, found.hits, found.query)
    _print_hits(found, as_json, radius)


@dataclass(frozen=True)
class _Ranking:
    """The flags that shape the ranking, parsed once so both kinds of query pass them on
    unchanged to ``Index.search`` / ``Index.search_ids``."""

    k: int
    radius: int | None
    rerank: bool
    candidates: int | None
    concept: str | None

    @classmethod
    def parse(
        cls,
        k: str,
        radius: str | None,
        candidates: str | None,
        codes_only: bool,
        concept: str | None,
    ) -> _Ranking:
        """Parsed here, not by click, so a bad value is one line naming its flag."""
        top_k = _number("-k/--topk", k, int, minimum=1)
        max_distance = None if radius is None else _number("--radius", radius, int, minimum=0)
        pool = None if candidates is None else _number("--candidates", candidates, int, minimum=1)
        return cls(top_k, max_distance, not codes_only, pool, concept)

    @property
    def options(self) -> dict[str, Any]:
        return {"rerank": self.rerank, "candidates": self.candidates, "concept": self.concept}


@dataclass(frozen=True)
class _Found:
    """One answered query: what the output step prints, whatever the kind of query."""

    index: SearchIndex
    query: dict[str, Any]  # printed under "query": what was asked, and its code (hex)
    pixels: np.ndarray | None  # the query picture for --sheet
    hits: list[Hit]


def _check_flags(
    image: str | None,
    keyframe_id: str | None,
    video: str | None,
    seconds: float | None,
    exclude_same_video: bool,
    sheet: str | None,
) -> None:
    """Combinations of flags click cannot express; refused before anything is opened."""
    given = [
        name
        for name, v in (("--image", image), ("--keyframe", keyframe_id), ("--video", video))
        if v is not None
    ]
    if len(given) != 1:
        raise UsageError("give exactly one of --image, --keyframe, --video (with --at)")
    if (video is None) != (seconds is None):
        raise UsageError("--video and --at go together")
    if exclude_same_video and keyframe_id is None:
        raise UsageError("--exclude-same-video applies to --keyframe queries")
    if sheet is not None and Path(sheet).suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
        raise UsageError(f"--sheet must end in .jpg or .png, got {sheet}")


def _by_keyframe(
    index_dir: str,
    keyframe_id: str,
    ranking: _Ranking,
    exclude_same_video: bool,
    sheet: str | None,
) -> _Found:
    """A keyframe query needs no model: the index layer's ``Index`` (read access) only."""
    from vidhash.index.search.index import Index

    index = Index.open(index_dir, access="read")  # one query: read only what it needs
    try:
        code = index.code_of(keyframe_id)
    except KeyError:
        raise InputError(f"keyframe {keyframe_id!r} is not in the index") from None
    row = index.record(keyframe_id)
    pixels = None
    if sheet is not None and row["image_path"]:
        from vidhash.index.search.sheet import load_rgb

        pixels = load_rgb(Path(index_dir) / row["image_path"])
    with _concept_checked():
        hits = index.search_ids(
            keyframe_id, ranking.k, ranking.radius, exclude_same_video, **ranking.options
        )
    query = {
        "keyframe_id": keyframe_id,
        "video_path": row["video_path"],
        "pts_time": float(row["pts_time"]),
        "code": code.tobytes().hex(),
    }
    return _Found(index, query, pixels, hits)


def _query_pixels(
    image: str | None, video: str | None, seconds: float | None, backend: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The query picture, preprocessed by ``vidhash.query`` exactly as indexing does, and
    how the output names it."""
    from vidhash.query import frame_pixels, image_pixels

    if video is not None:  # frame_pixels checks the backend first
        return frame_pixels(video, seconds, backend), {"video": video, "at": seconds}
    return image_pixels(image), {"image": image}


def _by_pixels(
    index_dir: str,
    pixels: np.ndarray,
    query: dict[str, Any],
    ranking: _Ranking,
    model: str | None,
    device: str,
) -> _Found:
    """Embed with the index's model (``vidhash.query.Index``), then search by code and
    descriptor (not ``search_pixels``: the output prints the query's code)."""
    from vidhash.query import Index

    index = Index.open(index_dir)
    with _concept_checked():
        codes, descriptors = index.embed(pixels, model, device)
        code, desc = codes[0], None if descriptors is None else descriptors[0]
        hits = index.search(code, ranking.k, ranking.radius, descriptors=desc, **ranking.options)
    return _Found(index, {**query, "code": code.tobytes().hex()}, pixels, hits)


@contextmanager
def _concept_checked() -> Iterator[None]:
    """The library's KeyError for an unknown --concept, said as a usage error."""
    try:
        yield
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def _print_hits(found: _Found, as_json: bool, radius: str | None) -> None:
    """JSON (query and hits) or one line per hit, as the user asked."""
    if as_json:
        hits = [h.to_dict() for h in found.hits]
        click.echo(json.dumps({"query": found.query, "hits": hits}, indent=2))
        return
    if not found.hits:
        click.echo("no hits" + (f" within distance {radius}" if radius is not None else ""))
    for rank, hit in enumerate(found.hits, 1):
        concepts = f"  [{', '.join(hit.concepts)}]" if hit.concepts else ""
        score = "" if hit.score is None else f" s={hit.score:.3f}"
        click.echo(
            f"{rank:3d}  d={hit.distance:<3d}{score} {_clock(hit.pts_time):>10}  "
            f"{hit.video_path}  {hit.keyframe_id}{concepts}"
        )


def _number(option: str, text: str, kind: type, minimum: float) -> int | float:
    """Parse a numeric option ourselves, so a bad value is one line (``error: -k ...``)."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be {kind.__name__} >= {minimum}, got {text!r}") from None
    if not value >= minimum or value == float("inf"):  # also refuses nan
        raise UsageError(f"{option} must be {kind.__name__} >= {minimum}, got {text!r}")
    return value


def _clock(seconds: float) -> str:
    """h:mm:ss.mmm of a hit's pts_time."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}"


def _write_sheet(
    path: str, query_pixels: np.ndarray | None, hits: list[Hit], query: dict[str, Any]
) -> None:
    """A contact sheet: the query picture, then each hit captioned with where it is."""
    from vidhash.index.search.sheet import hit_caption, load_rgb, make_contact_sheet

    results = []
    for hit in hits:
        caption = hit_caption(hit.video_path, hit.pts_time, hit.distance)
        if hit.concepts:
            caption += "\n" + ", ".join(hit.concepts)
        results.append((load_rgb(hit.image_path), caption, None))
    label = (
        query.get("keyframe_id")
        or query.get("image")
        or f"{query.get('video')} @ {query.get('at')}s"
    )
    make_contact_sheet(query_pixels, results, path, title=f"query: {label}")
