"""Options the two training commands share (one definition, one help text)."""

from __future__ import annotations

import click

views_option = click.option(
    "--views",
    default=1,
    show_default=True,
    type=int,
    help="crops per training image: the center crop + random scale crops and mirrors",
)
