"""`vidhash index`: videos (and still images) -> hashed keyframes in a Parquet index.

The ingest runner with the model, into the index sink (docs/SCHEMA.md); exit codes as
`vidhash extract`'s.
"""

from __future__ import annotations

import click

from vidhash.cli._ingest import (
    DEFAULTS,
    distributor_from,
    ingest_options,
    options_from,
    report,
    run_kwargs,
)


@click.command("index")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", "index_dir", required=True, type=click.Path(), help="Index directory.")
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="A shipped model's name (see `vidhash models`) or a checkpoint path.",
)
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--no-images", is_flag=True, help="Do not keep keyframe JPEGs in the index.")
@click.option("--reindex", is_flag=True, help="Rebuild an index made with a different model.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--num-gpus-per-worker", type=float, default=0.0, show_default=True)
@click.option("--decode-cpus", type=float, default=1.0, show_default=True)
@ingest_options
def command(
    input_path: str,
    index_dir: str,
    model: str,
    batch_size: int,
    no_images: bool,
    reindex: bool,
    device: str,
    num_gpus_per_worker: float,
    decode_cpus: float,
    **flags,
) -> None:
    """Index INPUT (a video, a folder of videos and images, or a list file) into --out.

    Reruns add only new or changed inputs, drop the rows of deleted ones and redo inputs
    whose keyframes or images were damaged (--verify checks every file).
    """
    from vidhash.ingest.run import build_index

    options = options_from(flags, batch_size=batch_size, save_images=not no_images)
    distributor = distributor_from(
        flags,
        model,
        num_gpus_per_worker=num_gpus_per_worker,
        decode_cpus=decode_cpus,
        device=device,
    )
    summary = build_index(
        input_path,
        index_dir,
        model,
        options,
        reindex=reindex,
        device=device,
        distributor=distributor,
        **run_kwargs(flags),
    )
    report(summary, flags["as_json"])
