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
from pathlib import Path

import click

from vidhash.errors import InputError, UsageError
from vidhash.video.stream import backend_names


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
    top_k = _number("-k/--topk", k, int, minimum=1)
    max_distance = None if radius is None else _number("--radius", radius, int, minimum=0)
    pool = None if candidates is None else _number("--candidates", candidates, int, minimum=1)
    seconds = None if at is None else _number("--at", at, float, minimum=0)
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

    query: dict = {}
    if keyframe_id is not None:
        from vidhash.index.search.index import Index

        index = Index.open(index_dir, access="read")  # one query: read only what it needs
        try:
            code = index.code_of(keyframe_id)
        except KeyError:
            raise InputError(f"keyframe {keyframe_id!r} is not in the index") from None
        row = index.record(keyframe_id)
        query_pixels = None
        if sheet is not None and row["image_path"]:
            from vidhash.index.search.sheet import load_rgb

            query_pixels = load_rgb(Path(index_dir) / row["image_path"])
        query = {
            "keyframe_id": keyframe_id,
            "video_path": row["video_path"],
            "pts_time": float(row["pts_time"]),
        }
    else:
        from vidhash.query import Index, frame_pixels, image_pixels

        if video is not None:
            query_pixels = frame_pixels(video, seconds, backend)  # checks the backend first
        else:
            query_pixels = image_pixels(image)
        index = Index.open(index_dir)
        query = {"image": image} if image else {"video": video, "at": seconds}
    options = {"rerank": not codes_only, "candidates": pool, "concept": concept}
    try:
        if keyframe_id is not None:
            hits = index.search_ids(keyframe_id, top_k, max_distance, exclude_same_video,
                                    **options)  # fmt: skip
        else:
            codes, descriptors = index.embed(query_pixels, model, device)
            code, desc = codes[0], None if descriptors is None else descriptors[0]
            hits = index.search(code, top_k, max_distance, descriptors=desc, **options)
    except KeyError as exc:  # an unknown --concept
        raise UsageError(str(exc.args[0])) from None
    query["code"] = code.tobytes().hex()
    if not codes_only and not index.descriptor_dims:
        from vidhash.index.search.index import NO_DESCRIPTORS

        click.echo(f"note: {index_dir}: {NO_DESCRIPTORS}", err=True)

    if sheet is not None:
        _write_sheet(sheet, query_pixels, hits, query)
    if as_json:
        click.echo(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}, indent=2))
        return
    if not hits:
        click.echo("no hits" + (f" within distance {radius}" if radius is not None else ""))
    for rank, hit in enumerate(hits, 1):
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
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}"


def _write_sheet(path: str, query_pixels, hits, query: dict) -> None:
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
