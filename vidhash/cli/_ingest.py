"""What `vidhash extract` and `vidhash index` share: their options and their report.

Both commands build :class:`vidhash.ingest.IngestOptions` from the same flags (validated
once, by the runner: ``IngestOptions.validate``), pick the same distributor for
``--engine``, and print the same summary, so their outputs and exit codes agree: 0 every
input ok (skipped and duplicate inputs included), 1 some inputs failed or were only partly
decoded, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from vidhash.ingest.options import DEFAULT_EVERY, IngestOptions
from vidhash.video.sampling import MODES
from vidhash.video.stream import backend_names

# Defaults and choices are the library's (IngestOptions), so --help cannot drift from it.
DEFAULTS = IngestOptions()

_OPTIONS = [
    click.option(
        "--every", type=float, default=None, help=f"Seconds between samples [{DEFAULT_EVERY:g}]."
    ),
    click.option("--count", type=int, default=None, help="Samples per video, evenly spread."),
    click.option(
        "--mode",
        type=click.Choice(MODES),
        default=DEFAULTS.mode,
        show_default=True,
        help="fast: nearest keyframe within half a step; exact: the frame on screen.",
    ),
    click.option(
        "--backend", type=click.Choice(backend_names()), default=DEFAULTS.backend, show_default=True
    ),
    click.option(
        "--workers", type=int, default=None, help="Decode threads [one per core, at least 2]."
    ),
    click.option(
        "--jpeg-quality",
        type=int,
        default=DEFAULTS.jpeg_quality,
        show_default=True,
        help="1..100.",
    ),
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


def options_from(flags: dict[str, Any], **more: Any) -> IngestOptions:
    """The IngestOptions of a command's flags (``extract``/``build_index`` validate them)."""
    names = ("every", "count", "mode", "backend", "workers", "jpeg_quality")
    return IngestOptions(**{n: flags[n] for n in names}, **more)


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
