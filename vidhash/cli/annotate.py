"""`vidhash annotate INDEX --labels FILE.csv`: concept labels for keyframes, videos or ranges."""

from __future__ import annotations

import dataclasses
import json

import click


@click.command("annotate")
@click.argument("index_dir", metavar="INDEX", type=click.Path())
@click.option(
    "--labels",
    "labels_csv",
    required=True,
    type=click.Path(),
    help="CSV: concept,group, then keyframe_id or video (path or unique file name) "
    "with optional start,end seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def command(index_dir: str, labels_csv: str, as_json: bool) -> None:
    """Replace INDEX's concept labels with those in --labels (all rows or none).

    A row labels one keyframe, a whole video or image, or a time range of a video.
    Bad rows (unknown ids or videos, ambiguous names, malformed values) are listed by
    line number and nothing is written.
    """
    from vidhash.index.search.annotate import annotate

    summary = annotate(index_dir, labels_csv)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(summary), indent=2))
        return
    click.echo(
        f"stored {summary.labels} labels on {summary.keyframes} keyframes "
        f"from {summary.rows} rows ({len(summary.concepts)} concepts)"
    )
    for concept, n in sorted(summary.concepts.items()):
        click.echo(f"  {concept}: {n} keyframes")
    if summary.empty_rows:
        lines = ", ".join(map(str, summary.empty_rows[:20]))
        click.echo(f"warning: no keyframe falls in the range on line(s) {lines}", err=True)
