"""Options the two training commands share, declared once, from the library's parts.

Every training option is a field of a part of the run's configuration
(:mod:`vidhash.train.config`, the objectives, ``HashConfig`` / ``SegConfig``) with the same
name: :func:`field_option` reads its default from the field and takes its choices from the
library's constants, so ``--help`` says what the library does. The commands only gather
their options into ``from_options``, which checks them (the CLI validates nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from vidhash.train.config import (
    DEVICES,
    OPTIMIZERS,
    RECIPES,
    BackboneChoice,
    Crops,
    Runtime,
    Schedule,
    default_of,
    option_names,
)

Decorator = Callable[[Callable], Callable]


def field_option(part: type, option: str, *decls: str, **kwargs: Any) -> Decorator:
    """``--option`` (or ``decls``) for ``part``'s field ``option``, its default the field's
    (unless ``default=`` is given). Choices (``choices=``) are shown as strings and handed
    back in their own type."""
    default = kwargs.pop("default") if "default" in kwargs else default_of(part, option)
    choices = kwargs.pop("choices", None)
    if choices is not None:
        kwargs["type"] = click.Choice([str(c) for c in choices])
        kind = type(choices[0])
        kwargs["callback"] = lambda ctx, param, value: None if value is None else kind(value)
        default = None if default is None else str(default)
    elif default is not None and not isinstance(default, bool | tuple):
        kwargs.setdefault("type", type(default))
    if isinstance(default, bool) and not decls:
        kwargs["is_flag"] = True
    if default not in (None, "", ()) and not kwargs.get("required"):
        kwargs.setdefault("show_default", True)
    flags = decls or ("--" + option.replace("_", "-"),)
    return click.option(*flags, option, default=default, **kwargs)


def options(*decorators: Decorator) -> Decorator:
    """Several options as one decorator, shown in ``--help`` in the order given."""

    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def output_options(config: type) -> Decorator:
    """Where the checkpoint goes, and whether to go on from it."""
    return options(
        click.option(
            "--out",
            required=True,
            type=click.Path(dir_okay=False),
            help="checkpoint (.safetensors); its resume state beside it (.resume)",
        ),
        field_option(config, "resume", help="continue from --out and its .resume state"),
    )


def crop_options(data: type[Crops]) -> Decorator:
    return options(
        field_option(
            data,
            "views",
            help="crops per training image: the center crop + random scale crops and mirrors",
        ),
        field_option(data, "cache_dir", help="where the frozen backbone's maps are cached"),
    )


def backbone_options(head: type[BackboneChoice], backbone_help: str) -> Decorator:
    return options(
        field_option(head, "backbone", help=backbone_help),
        field_option(
            head,
            "backbone_weights",
            help="'default', 'none' (random init) or a torchvision-format state dict PATH",
        ),
        field_option(
            head,
            "freeze_backbone",
            "--freeze-backbone/--train-backbone",
            help="frozen backbone: its maps are cached on disk once",
        ),
    )


SCHEDULE_HELP = {"drop_after": "epochs at --lr", "lr_after": "learning rate after --drop-after"}


def schedule_options(recipes: dict[str, Schedule] | None = None) -> Decorator:
    """The schedule's options; with ``recipes``, each left unset takes the objective's
    recipe (``--help`` lists them), else :class:`Schedule`'s defaults."""

    def one(name: str) -> Decorator:
        text = SCHEDULE_HELP.get(name)
        choices = OPTIMIZERS if name == "optimizer" else None
        if recipes is None:
            return field_option(Schedule, name, help=text, choices=choices)
        shown = ", ".join(f"{k} {getattr(r, name)}" for k, r in recipes.items())
        kind = {} if choices else {"type": type(default_of(Schedule, name))}
        text = f"{text or ''} [recipe: {shown}]".strip()
        return field_option(Schedule, name, default=None, help=text, choices=choices, **kind)

    return options(*(one(name) for name in option_names(Schedule).values()))


def runtime_options() -> Decorator:
    return options(
        field_option(Runtime, "device", choices=DEVICES),
        field_option(Runtime, "seed"),
        field_option(
            Runtime,
            "threads",
            type=int,
            help="torch threads [torch's default: one per core]",
        ),
    )


def recipes_text() -> str:
    """The recipes, for a command's help (from :data:`~vidhash.train.config.RECIPES`)."""
    return "; ".join(
        f"{name} = {r.optimizer}, lr {r.lr} -> {r.lr_after} after {r.drop_after} of "
        f"{r.epochs} epochs, batch {r.batch_size}, weight decay {r.weight_decay}"
        for name, r in RECIPES.items()
    )


def run_and_print(train: Callable[..., dict], config: Any) -> None:
    """Train with progress on stderr; the final metrics as JSON on stdout."""
    metrics = train(config, log=lambda s: click.echo(s, err=True))
    click.echo(json.dumps(metrics, indent=1))
