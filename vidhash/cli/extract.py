"""``vidhash extract INPUT --out DIR``: sample keyframes from videos into JPEGs + Parquet.

Exit codes: 0 every input ok (non-video files are listed as skipped, not failures);
1 finished, but some inputs failed or decoded only partly (each has a row with its
reason in DIR/videos); 2 usage or input error (one line on stderr); 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vidhash.errors import UsageError


@click.command("extract")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--every", type=float, default=None, help="Seconds between samples [default: 2].")
@click.option("--count", type=int, default=None, help="Samples per video (instead of --every).")
@click.option(
    "--mode",
    type=click.Choice(["fast", "exact"]),
    default="fast",
    show_default=True,
    help="fast: nearest keyframe within half a step; exact: the frame on screen at each time.",
)
@click.option(
    "--backend",
    type=click.Choice(["pyav", "ffmpeg", "opencv"]),
    default="pyav",
    show_default=True,
    help="Decoder.",
)
@click.option("--size", type=int, default=224, show_default=True, help="Square keyframe side.")
@click.option("--jpeg-quality", type=int, default=90, show_default=True, help="1..100.")
@click.option("--workers", type=int, default=1, show_default=True, help="Videos in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(
    input_path: Path,
    out: Path,
    every: float | None,
    count: int | None,
    mode: str,
    backend: str,
    size: int,
    jpeg_quality: int,
    workers: int,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Sample keyframes from INPUT (a video, a folder, or a text file listing paths).

    Writes DIR/keyframes/<hash16>/<ms>.jpg, DIR/manifest/*.parquet (one row per keyframe)
    and DIR/videos/*.parquet (one status row per input); see docs/EXTRACT.md. A rerun skips
    inputs already done with the same content and options.

    Exit codes: 0 all ok; 1 finished, some inputs failed or were partial; 2 usage error.
    """
    from vidhash.extract import ExtractOptions, extract

    if every is not None and count is not None:
        raise UsageError("give either --every or --count, not both")
    options = ExtractOptions(
        every=2.0 if every is None and count is None else every,
        count=count,
        mode=mode,
        backend=backend,
        size=size,
        jpeg_quality=jpeg_quality,
    )
    summary = extract(
        input_path, out, options, workers=workers, progress=not no_progress and not as_json
    )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(
            f"{summary.inputs} inputs: {summary.ok} ok, {summary.partial} partial, "
            f"{summary.failed} failed, {summary.skipped} skipped "
            f"({summary.unchanged} unchanged since the last run); "
            f"{summary.keyframes} keyframes in {out} ({summary.seconds:.1f} s)"
        )
        for problem in summary.problems:
            click.echo(f"  {problem['status']}: {problem['path']}: {problem['error']}", err=True)
    if summary.exit_code:
        sys.exit(summary.exit_code)
