"""``vidhash models``: list the shipped models (name, code length, metrics, file, sha256)."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="print the registry as JSON")
@click.option(
    "--ship",
    nargs=2,
    metavar="NAME CHECKPOINT",
    help="(maintainers) copy a checkpoint into the package as NAME, fp16, and register it",
)
@click.option("--description", default="", help="with --ship: one line for the listing")
@click.option("--full-precision", is_flag=True, help="with --ship: keep float32 tensors")
@click.option(
    "--export",
    "export",
    metavar="CHECKPOINT",
    help="write CHECKPOINT's ONNX graph beside it (x.onnx), for machines without torch",
)
def command(
    as_json: bool,
    ship: tuple[str, str] | None,
    description: str,
    full_precision: bool,
    export: str | None,
) -> None:
    """List the models shipped inside the package (usable as --model NAME)."""
    from vidhash.models import export_model, ship_model, shipped_models, shipped_path

    if export:
        click.echo(export_model(export))
        return
    if ship:
        entry = ship_model(ship[0], ship[1], description, half=not full_precision)
        click.echo(json.dumps({ship[0]: entry}, indent=1))
        return

    registry = shipped_models()
    if as_json:
        click.echo(json.dumps(registry, indent=1))
        return
    if not registry:
        click.echo("no shipped models installed")
        return
    for name, entry in registry.items():
        path = shipped_path(name)
        size = f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "MISSING"
        metrics = ", ".join(f"{k} {v}" for k, v in entry.get("metrics", {}).items())
        click.echo(
            f"{name:18s} {entry.get('arch', ''):9s} {entry.get('code_bits', '')} bits  "
            f"{size:>8s}  sha256 {entry['sha256'][:12]}  {entry.get('description', '')}"
        )
        if metrics:
            click.echo(f"{'':18s} {metrics}")
        for part, source in (entry.get("provenance") or {}).items():
            click.echo(f"{'':18s} {part}: {source}")
        descriptor = entry.get("descriptor")
        if descriptor:
            click.echo(
                f"{'':18s} descriptor: {descriptor['source']} PCA {descriptor['dims']}, float16 "
                f"({2 * descriptor['dims']} bytes a keyframe)"
            )
        else:
            click.echo(f"{'':18s} descriptor: none (search by codes only)")
        for item in entry.get("data") or []:
            kind = "labelled" if item.get("labelled") else "unlabelled"
            click.echo(f"{'':18s}   data: {item['source']} ({item['images']:,} images, {kind})")
