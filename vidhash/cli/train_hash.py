"""``vidhash train-hash``: phase 2, the hash head (proposed PSP or DLBHC baseline)."""

from __future__ import annotations

import json

import click

from vidhash.cli._train import views_option


@click.command("train-hash")
@click.option(
    "--train",
    "train_dir",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="ImageFolder root of labelled training images; repeat to join several label sets "
    "(the first is the retrieval database of the final report)",
)
@click.option(
    "--test",
    "test_dir",
    type=click.Path(exists=True, file_okay=False),
    help="ImageFolder root of test images (the retrieval queries of the final report)",
)
@click.option(
    "--unlabelled",
    multiple=True,
    type=click.Path(exists=True),
    help="folder, file or list of unlabelled photos and videos (distill objective); repeat",
)
@click.option(
    "--unlabelled-every",
    default=1.0,
    show_default=True,
    type=float,
    help="seconds between frames taken from unlabelled videos",
)
@click.option(
    "--objective",
    default="distill",
    show_default=True,
    type=click.Choice(["distill", "paper"]),
    help="paper: the paper's point-wise softmax loss, unchanged; distill: + neighbourhood "
    "distillation of the backbone's similarities, quantisation and bit balance",
)
@click.option(
    "--init",
    default="random",
    show_default=True,
    type=click.Choice(["random", "itq"]),
    help="itq: the head starts as the PCA-ITQ code of its input (fitted without labels)",
)
@views_option
@click.option("--teacher", default="s32", show_default=True, help="backbone levels (distill)")
@click.option("--w-cls", default=1.0, show_default=True, type=float)
@click.option("--w-sim", default=1.0, show_default=True, type=float)
@click.option("--w-quant", default=0.1, show_default=True, type=float)
@click.option("--w-balance", default=0.1, show_default=True, type=float)
@click.option("--tau-teacher", default=0.05, show_default=True, type=float)
@click.option("--tau-student", default=0.1, show_default=True, type=float)
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
    default="efficientnet_lite0_ms",
    show_default=True,
    help="baseline without --seg-checkpoint only",
)
@click.option(
    "--levels",
    default="",
    help="backbone levels the head reads, comma-separated: the baseline's whole input [the "
    "PSP net's neck levels]; for --arch psp, read beside the PSP's output [none]",
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
@click.option("--epochs", type=int)
@click.option("--lr", type=float)
@click.option("--lr-after", type=float)
@click.option("--drop-after", type=int, help="epochs at --lr")
@click.option("--momentum", default=0.9, show_default=True, type=float)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]))
@click.option("--weight-decay", type=float)
@click.option("--batch-size", type=int)
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
    """Train the hashing network; prints test accuracy and mAP@topk / mAP@all.

    Options left unset (--epochs, --lr, --lr-after, --drop-after, --weight-decay,
    --batch-size, --optimizer) take the objective's recipe: paper = SGD, lr 1e-3 -> 1e-4
    after 20 epochs, 30 epochs, batch 96; distill = Adam, lr 1e-3 -> 1e-4 after 30, 40
    epochs, batch 256.
    """
    from vidhash.train.hashing import HashConfig, train_hashing

    opts["train_dir"] = list(opts["train_dir"])
    opts["unlabelled"] = list(opts["unlabelled"])
    metrics = train_hashing(
        HashConfig(bits=int(bits), **opts), log=lambda s: click.echo(s, err=True)
    )
    click.echo(json.dumps(metrics, indent=1))
