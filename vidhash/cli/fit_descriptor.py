"""`vidhash fit-descriptor CHECKPOINT`: give a hashing net its stored descriptor.

Fits the projection of :mod:`vidhash.models.descriptor` on an unlabelled pool (photos and
video frames, :class:`vidhash.train.pool.UnlabelledPool`) and writes a new checkpoint. The
codes do not change; the model id does (the descriptor is part of the model), so indexes
built with the old file are rebuilt with ``vidhash index ... --reindex``.
"""

from __future__ import annotations

import click

from vidhash.models.descriptor import SOURCES


@click.command("fit-descriptor")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--pool",
    "pool",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="folder, file or list of unlabelled photos and videos; repeat",
)
@click.option(
    "--pool-every",
    default=2.0,
    show_default=True,
    help="seconds between frames taken from pool videos",
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="head",
    show_default=True,
    help="what is projected: a backbone level, or the hash head's hidden layer",
)
@click.option("--dims", default=256, show_default=True, help="descriptor dimensions (float16)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="new checkpoint")
@click.option(
    "--store-dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="tensor precision in the checkpoint",
)
def command(checkpoint, pool, pool_every, source, dims, out, store_dtype) -> None:
    """Fit CHECKPOINT's descriptor on --pool and write it to --out."""
    import torch

    from vidhash.models.checkpoint import load_checkpoint, save_checkpoint
    from vidhash.models.nets import HashNet
    from vidhash.train.descriptor import fit_descriptor
    from vidhash.train.pool import UnlabelledPool

    net, header = load_checkpoint(checkpoint)
    if not isinstance(net, HashNet):
        raise click.UsageError(f"{checkpoint} is not a hashing checkpoint")
    images = UnlabelledPool.open(list(pool), every=pool_every, log=click.echo)
    entry = fit_descriptor(net, images, source, dims)
    entry["pool"] = [str(p) for p in pool]
    dtype = torch.float16 if store_dtype == "float16" else None
    sha = save_checkpoint(net, out, {**header, "descriptor": entry}, dtype=dtype)
    click.echo(
        f"{out}: {source} descriptor, {dims} dims from {len(images)} pool images "
        f"({entry['explained_variance']:.1%} of the variance); sha256 {sha[:16]}"
    )
