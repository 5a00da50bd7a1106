"""``vidhash train-seg``: phase 1, the PSP module on VOC-layout pixel masks."""

from __future__ import annotations

import json

import click

from vidhash.cli._train import views_option
from vidhash.errors import UsageError


@click.command("train-seg")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="VOC-layout root; repeat to merge several sets into one label list.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="checkpoint (.safetensors)"
)
@click.option(
    "--backbone",
    default="efficientnet_lite0_ms",
    show_default=True,
    help="a registered backbone (`_ms`: multi-scale, fused by --neck)",
)
@click.option(
    "--backbone-weights",
    default="default",
    show_default=True,
    help="'default', 'none' (random init) or a torchvision-format state dict PATH",
)
@click.option(
    "--neck",
    default="s8:64,s16:128,head:256",
    show_default=True,
    help="levels fused into the PSP's 28x28 map and their lateral channels (multi-scale)",
)
@click.option(
    "--detail",
    default="",
    help="a finer backbone level (s4) joined into the segmentation head, for thin things",
)
@click.option("--decoder-channels", default=128, show_default=True, type=int)
@click.option("--epochs", default=30, show_default=True, type=int)
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--lr-after", default=1e-4, show_default=True, type=float)
@click.option("--drop-after", default=20, show_default=True, type=int, help="epochs at --lr")
@click.option("--momentum", default=0.9, show_default=True, type=float)
@click.option("--weight-decay", default=1e-4, show_default=True, type=float)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--optimizer", default="sgd", show_default=True, type=click.Choice(["sgd", "adam"]))
@click.option(
    "--class-weights",
    default="none",
    show_default=True,
    type=click.Choice(["none", "median-freq"]),
    help="median-freq: SegNet's class balancing, so rare thin classes count",
)
@views_option
@click.option(
    "--freeze-backbone/--train-backbone",
    default=True,
    show_default=True,
    help="frozen backbone: its maps are cached on disk once",
)
@click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache-dir", default="~/.cache/vidhash/features", show_default=True)
@click.option("--resume", is_flag=True, help="continue from --out and its .resume state")
def command(data: tuple[str, ...], out: str, **opts) -> None:  # fmt: skip
    """Train the PSP segmentation module (paper defaults; all configurable)."""
    from vidhash.train.seg import SegConfig, train_segmentation

    if opts["epochs"] < 1 or opts["batch_size"] < 1:
        raise UsageError("--epochs and --batch-size must be positive")
    metrics = train_segmentation(SegConfig(data=list(data), out=out, **opts),
                                 log=lambda s: click.echo(s, err=True))  # fmt: skip
    click.echo(json.dumps(metrics, indent=1))
