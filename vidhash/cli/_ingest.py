"""What `vidhash extract` and `vidhash index` share: their options and their report.

Both commands build :class:`vidhash.ingest.IngestOptions` from the same flags (validated
once, by the options themselves), pick the same distributor for ``--engine``, and print
the same summary, so their outputs and exit codes agree: 0 every input ok (skipped and
duplicate inputs included), 1 some inputs failed or were only partly decoded, 2 usage
error, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from vidhash.video.stream import backend_names

_OPTIONS = [
    click.option("--every", type=float, default=None, help="Seconds between samples [2]."),
    click.option("--count", type=int, default=None, help="Samples per video, evenly spread."),
    click.option(
        "--mode",
        type=click.Choice(["fast", "exact"]),
        default="fast",
        show_default=True,
        help="fast: nearest keyframe within half a step; exact: the frame on screen.",
    ),
    click.option(
        "--backend", type=click.Choice(backend_names()), default="pyav", show_default=True
    ),
    click.option("--workers", type=int, default=None, help="Decode threads [max(2, cores/2)]."),
    click.option("--jpeg-quality", type=int, default=90, show_default=True, help="1..100."),
    click.option("--verify", is_flag=True, help="Read every part and image; redo damaged ones."),
    click.option(
        "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True
    ),
    click.option("--address", default=None, help="Ray cluster address (--engine ray)."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
    click.option("--no-progress", is_flag=True, help="No progress bar."),
]


def ingest_options(command: Callable) -> Callable:
    """Decorate a command with the options both ingest commands take."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def options_from(flags: dict[str, Any], **more: Any):
    """The validated IngestOptions for a command's flags."""
    from vidhash.ingest.options import IngestOptions

    names = ("every", "count", "mode", "backend", "workers", "jpeg_quality")
    return IngestOptions(**{n: flags[n] for n in names}, **more).validate()


def distributor_from(flags: dict[str, Any], model: str | None = None, **ray: Any):
    """None (the local engine) or a RayDistributor for ``--engine ray``."""
    if flags["engine"] != "ray":
        return None
    from vidhash.ingest.ray import RayDistributor

    return RayDistributor(model=model, address=flags["address"], progress=_progress(flags), **ray)


def _progress(flags: dict[str, Any]) -> bool:
    return not (flags["as_json"] or flags["no_progress"]) and sys.stderr.isatty()


def run_kwargs(flags: dict[str, Any]) -> dict[str, Any]:
    return {"verify": flags["verify"], "progress": _progress(flags)}


def report(summary, as_json: bool) -> None:
    """Print the summary (JSON on stdout, or text with problems on stderr); exit 0 or 1."""
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        first, *rest = summary.lines()
        click.echo(first)
        for line in rest:
            click.echo(line, err=True)
    if summary.exit_code:
        sys.exit(summary.exit_code)
