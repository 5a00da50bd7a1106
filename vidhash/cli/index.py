"""`vidhash index`: videos (and still images) -> hashed keyframes in a Parquet index."""

from __future__ import annotations

import json
import sys

import click

from vidhash.errors import UsageError


@click.command("index")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", "index_dir", required=True, type=click.Path(), help="Index directory.")
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="A shipped model's name (see `vidhash models`) or a checkpoint path.",
)
@click.option("--every", type=float, default=None, help="Seconds between samples [2].")
@click.option("--count", type=int, default=None, help="Keyframes per video, evenly spread.")
@click.option("--mode", type=click.Choice(["fast", "exact"]), default="fast", show_default=True)
@click.option(
    "--backend", type=click.Choice(["pyav", "ffmpeg", "opencv"]), default="pyav", show_default=True
)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--workers", type=int, default=None, help="Decode workers [max(2, cores/2)].")
@click.option("--no-images", is_flag=True, help="Do not keep keyframe JPEGs in the index.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True)
@click.option("--reindex", is_flag=True, help="Rebuild an index made with a different model.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (--engine ray).")
@click.option("--num-gpus-per-worker", type=float, default=0.0, show_default=True)
@click.option("--decode-cpus", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def command(
    input_path: str,
    index_dir: str,
    model: str,
    every: float | None,
    count: int | None,
    mode: str,
    backend: str,
    batch_size: int,
    workers: int | None,
    no_images: bool,
    jpeg_quality: int,
    reindex: bool,
    device: str,
    engine: str,
    address: str | None,
    num_gpus_per_worker: float,
    decode_cpus: float,
    as_json: bool,
) -> None:
    """Index INPUT (a video, a folder of videos and images, or a list file) into --out.

    Reruns add only new or changed inputs and drop the rows of deleted ones.
    """
    from vidhash.pipeline import IndexOptions, build_index, default_workers

    if every is not None and count is not None:
        raise UsageError("give --every or --count, not both")
    if batch_size <= 0:
        raise UsageError("--batch-size must be > 0")
    options = IndexOptions(
        every=every if every is not None or count is not None else 2.0,
        count=count,
        mode=mode,
        backend=backend,
        batch_size=batch_size,
        workers=workers or default_workers(),
        save_images=not no_images,
        jpeg_quality=jpeg_quality,
    ).validate()
    if engine == "ray":
        from vidhash.ray_engine import build_index_ray

        summary = build_index_ray(
            input_path,
            index_dir,
            model,
            options=options,
            reindex=reindex,
            address=address,
            num_gpus_per_worker=num_gpus_per_worker,
            decode_cpus=decode_cpus,
            device=device,
            progress=not as_json,
        )
    else:
        summary = build_index(
            input_path,
            index_dir,
            model,
            options=options,
            reindex=reindex,
            device=device,
            progress=not as_json and sys.stderr.isatty(),
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(
            f"{summary.index}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
            f"{summary.partial} partial, {summary.failed} failed, {summary.skipped} skipped, "
            f"{summary.removed} removed; {summary.keyframes} keyframes in {summary.seconds:.1f} s "
            f"({summary.keyframes_per_second:.1f} keyframes/s)"
        )
        for failure in summary.failures:
            click.echo(f"  {failure['status']}: {failure['path']}: {failure['error']}", err=True)
    if summary.failed or summary.partial:
        sys.exit(1)
