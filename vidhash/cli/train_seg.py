"""``vidhash train-seg``: phase 1, the PSP module on VOC-layout pixel masks.

Options are the fields of :class:`vidhash.train.seg.SegConfig`'s parts, declared from them
(``vidhash/cli/_train.py``); the library checks them.
"""

from __future__ import annotations

import click

from vidhash.cli._train import (
    backbone_options,
    crop_options,
    field_option,
    output_options,
    run_and_print,
    runtime_options,
    schedule_options,
)
from vidhash.train.config import SegData, SegHead
from vidhash.train.objectives import CLASS_WEIGHTS, SegObjective
from vidhash.train.seg import SegConfig, train_segmentation


@click.command("train-seg")
@field_option(
    SegData,
    "data",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="VOC-layout root; repeat to merge several sets into one label list.",
)
@crop_options(SegData)
@backbone_options(SegHead, "a registered backbone (`_ms`: multi-scale, fused by --neck)")
@field_option(
    SegHead,
    "neck",
    help="levels fused into the PSP's 28x28 map and their lateral channels (multi-scale)",
)
@field_option(
    SegHead,
    "detail",
    help="a finer backbone level (s4) joined into the segmentation head, for thin things",
)
@field_option(SegHead, "decoder_channels")
@field_option(
    SegObjective,
    "class_weights",
    choices=CLASS_WEIGHTS,
    help="median-freq: SegNet's class balancing, so rare thin classes count",
)
@schedule_options()
@runtime_options()
@output_options(SegConfig)
def command(**opts) -> None:
    """Train the PSP segmentation module (paper defaults; all configurable)."""
    run_and_print(train_segmentation, SegConfig.from_options(**opts))
