"""``vidhash extract INPUT --out DIR``: sample keyframes from videos into JPEGs + Parquet.

The ingest runner without a model, into a folder sink (docs/EXTRACT.md). Exit codes: 0
every input ok (skipped non-videos included); 1 finished, but some inputs failed or
decoded only partly (each has a row with its reason in DIR/videos); 2 usage or input
error (one line on stderr); 130 interrupted.
"""

from __future__ import annotations

import click

from vidhash.cli._ingest import (
    distributor_from,
    ingest_options,
    options_from,
    report,
    run_kwargs,
)


@click.command("extract")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Output folder.")
@click.option("--size", type=int, default=224, show_default=True, help="Square keyframe side.")
@ingest_options
def command(input_path: str, out: str, size: int, **flags) -> None:
    """Sample keyframes from INPUT (a video, a folder, or a text file listing paths).

    Writes DIR/images/<hash16>/<keyframe_id>.jpg, DIR/keyframes/ (one row per keyframe)
    and DIR/videos/ (one status row per input); see docs/EXTRACT.md. A rerun skips inputs
    already done with the same content and sampling options.
    """
    from vidhash.ingest.run import extract

    options = options_from(flags, size=size)
    summary = extract(
        input_path, out, options, distributor=distributor_from(flags), **run_kwargs(flags)
    )
    report(summary, flags["as_json"])
