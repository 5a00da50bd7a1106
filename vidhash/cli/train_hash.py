"""``vidhash train-hash``: phase 2, the hash head (proposed PSP or DLBHC baseline)."""

from __future__ import annotations

import json

import click

from vidhash.errors import UsageError


@click.command("train-hash")
@click.option(
    "--train",
    "train_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="ImageFolder root of training images (also the retrieval database)",
)
@click.option(
    "--test",
    "test_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="ImageFolder root of test images (the retrieval queries)",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="checkpoint (.safetensors)"
)
@click.option("--arch", default="psp", show_default=True, type=click.Choice(["psp", "baseline"]))
@click.option(
    "--bits",
    default=48,
    show_default=True,
    type=click.Choice(["12", "16", "32", "48", "64", "128"]),
)
@click.option(
    "--seg-checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="train-seg checkpoint (backbone + PSP); required for --arch psp",
)
@click.option(
    "--backbone",
    default="efficientnet_lite0",
    show_default=True,
    help="baseline without --seg-checkpoint only",
)
@click.option(
    "--backbone-weights",
    default="default",
    show_default=True,
    help="'default', 'none' or a torchvision-format state dict PATH",
)
@click.option("--width", default=4096, show_default=True, type=int, help="FC width (paper: 4096)")
@click.option(
    "--head-input",
    default="stacked",
    show_default=True,
    type=click.Choice(["scores", "stacked", "both"]),
    help="what the FC stack reads from the PSP",
)
@click.option(
    "--pool", default=4, show_default=True, type=int, help="adaptive pool grid of the head input"
)
@click.option("--epochs", default=30, show_default=True, type=int)
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--lr-after", default=1e-4, show_default=True, type=float)
@click.option("--drop-after", default=20, show_default=True, type=int, help="epochs at --lr")
@click.option("--momentum", default=0.9, show_default=True, type=float)
@click.option("--weight-decay", default=5e-4, show_default=True, type=float)
@click.option("--batch-size", default=96, show_default=True, type=int)
@click.option("--freeze-backbone/--train-backbone", default=True, show_default=True)
@click.option("--freeze-psp/--train-psp", default=True, show_default=True)
@click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache-dir", default="~/.cache/vidhash/features", show_default=True)
@click.option("--resume", is_flag=True)
@click.option("--train-per-class", type=int, help="use only the first N training images per class")
@click.option("--test-per-class", type=int, help="use only the first N test images per class")
@click.option("--topk", default=1000, show_default=True, type=int, help="mAP@k reported")
@click.option(
    "--store-dtype",
    default="float32",
    show_default=True,
    type=click.Choice(["float32", "float16"]),
    help="tensor precision in the checkpoint",
)
def command(bits: str, **opts) -> None:
    """Train the hashing network; prints test accuracy and mAP@topk / mAP@all."""
    from vidhash.train.hashing import HashConfig, train_hashing

    if opts["epochs"] < 1 or opts["batch_size"] < 1 or opts["width"] < 1:
        raise UsageError("--epochs, --batch-size and --width must be positive")
    metrics = train_hashing(
        HashConfig(bits=int(bits), **opts), log=lambda s: click.echo(s, err=True)
    )
    click.echo(json.dumps(metrics, indent=1))
