"""``vidhash train-hash``: phase 2, the hash head (proposed PSP or DLBHC baseline).

Options are the fields of :class:`vidhash.train.hashing.HashConfig`'s parts, declared from
them (``vidhash/cli/_train.py``); the library checks them.
"""

from __future__ import annotations

import click

from vidhash.cli._train import (
    backbone_options,
    crop_options,
    field_option,
    options,
    output_options,
    recipes_text,
    run_and_print,
    runtime_options,
    schedule_options,
)
from vidhash.models.header import CODE_LENGTHS, HEAD_INPUTS
from vidhash.train.config import HASH_ARCHS, INITS, RECIPES, HashData, HashHead
from vidhash.train.hashing import STORE_DTYPES, HashConfig, train_hashing
from vidhash.train.objectives import OBJECTIVES, HashObjective

data_options = options(
    field_option(
        HashData,
        "train_dir",
        "--train",
        required=True,
        multiple=True,
        type=click.Path(exists=True, file_okay=False),
        help="ImageFolder root of labelled training images; repeat to join several "
        "label sets (the first is the retrieval database of the final report)",
    ),
    field_option(
        HashData,
        "test_dir",
        "--test",
        type=click.Path(exists=True, file_okay=False),
        help="ImageFolder root of test images (the retrieval queries of the report)",
    ),
    field_option(
        HashData,
        "unlabelled",
        multiple=True,
        type=click.Path(exists=True),
        help="folder, file or list of unlabelled photos and videos (distill); repeat",
    ),
    field_option(
        HashData, "unlabelled_every", help="seconds between frames taken from unlabelled videos"
    ),
    field_option(
        HashData, "train_per_class", type=int, help="use only the first N training images per class"
    ),
    field_option(
        HashData, "test_per_class", type=int, help="use only the first N test images per class"
    ),
    crop_options(HashData),
)

objective_options = options(
    field_option(
        HashObjective,
        "objective",
        choices=OBJECTIVES,
        help="paper: the paper's point-wise softmax loss, unchanged; distill: + "
        "neighbourhood distillation of the backbone's similarities, quantisation and "
        "bit balance",
    ),
    field_option(HashObjective, "teacher", help="backbone levels (distill)"),
    *(
        field_option(HashObjective, name)
        for name in ("w_cls", "w_sim", "w_quant", "w_balance", "tau_teacher", "tau_student")
    ),
)

head_options = options(
    field_option(HashHead, "arch", choices=HASH_ARCHS),
    field_option(HashHead, "bits", choices=CODE_LENGTHS),
    field_option(
        HashHead,
        "seg_checkpoint",
        type=click.Path(exists=True, dir_okay=False),
        help="train-seg checkpoint (backbone + PSP); required for --arch psp",
    ),
    backbone_options(HashHead, "a registered backbone: the baseline without --seg-checkpoint"),
    field_option(
        HashHead,
        "levels",
        help="backbone levels the head reads, comma-separated: the baseline's whole "
        "input [the PSP net's neck levels]; for --arch psp, read beside the PSP's "
        "output [none]",
    ),
    field_option(HashHead, "width", help="FC width (paper: 4096)"),
    field_option(
        HashHead, "head_input", choices=HEAD_INPUTS, help="what the FC stack reads from the PSP"
    ),
    field_option(HashHead, "pool", help="adaptive pool grid of the head input"),
    field_option(
        HashHead,
        "init",
        choices=INITS,
        help="itq: the head starts as the PCA-ITQ code of its input (no labels)",
    ),
    field_option(HashHead, "freeze_psp", "--freeze-psp/--train-psp"),
)


@click.command(
    "train-hash",
    help="Train the hashing network; prints test accuracy and mAP@topk / mAP@all.\n\n"
    "Schedule options left unset take the objective's recipe: " + recipes_text() + ".",
)
@data_options
@objective_options
@head_options
@schedule_options(RECIPES)
@runtime_options()
@field_option(HashConfig, "topk", help="mAP@k reported")
@field_option(
    HashConfig, "store_dtype", choices=STORE_DTYPES, help="tensor precision in the checkpoint"
)
@output_options(HashConfig)
def command(**opts) -> None:
    run_and_print(train_hashing, HashConfig.from_options(**opts))
