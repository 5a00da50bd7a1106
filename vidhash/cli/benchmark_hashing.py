"""``vidhash benchmark-hashing``: mAP@1000 / mAP@all / P@K / PR under a named protocol."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("benchmark-hashing")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--model", "model_name", required=True, help="default, default-baseline or a path.")
@click.option(
    "--protocol",
    "protocols",
    type=click.Choice(["dlbhc", "cifar10-1"]),
    multiple=True,
    default=("dlbhc",),
    show_default=True,
    help="Repeat to run several; images are encoded once.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("hashing-bench"))
@click.option("--queries-per-class", default=100, show_default=True)
@click.option(
    "--database-per-class",
    type=int,
    default=None,
    help="Cap the database per class (quick runs; the outputs are marked 'reduced').",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the query draw.")
@click.option("--batch-size", default=64, show_default=True, help="Images read per chunk.")
@click.option("--device", default="cpu", show_default=True)
def command(
    dataset: Path,
    model_name: str,
    protocols: tuple[str, ...],
    out_dir: Path,
    queries_per_class: int,
    database_per_class: int | None,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Standard hashing retrieval benchmark on an ImageFolder DATASET (train/, test/)."""
    import json

    from vidhash.errors import UsageError
    from vidhash.eval import protocols as proto
    from vidhash.models import load_model

    if queries_per_class <= 0 or batch_size <= 0:
        raise UsageError("--queries-per-class and --batch-size must be positive")
    if database_per_class is not None and database_per_class <= 0:
        raise UsageError("--database-per-class must be positive")
    data = proto.scan_image_folder(dataset)  # check the data before loading a model
    model = load_model(model_name, device=device)
    info = {
        "model_id": model.model_id,
        "model_name": getattr(model, "model_name", model_name),
        "code_bits": model.code_bits,
    }
    for protocol in dict.fromkeys(protocols):
        summary = proto.run_protocol(
            data,
            protocol,
            model.encode,  # its own micro-batch (small on CPU, large on GPU)
            info,
            out_dir,
            queries_per_class=queries_per_class,
            seed=seed,
            database_per_class=database_per_class,
            batch_size=batch_size,
        )
        keys = ("protocol", "n_queries", "n_database", "code_bits", "map@1000", "map@all")
        click.echo(json.dumps({k: summary.get(k) for k in keys}))
    click.echo(f"reports in {out_dir}")
