"""``vidhash evaluate``: per-concept MAP@K of an annotated index, optionally vs a baseline."""

from __future__ import annotations

from pathlib import Path

import click

from vidhash.errors import UsageError


def parse_topk(text: str) -> list[int]:
    """'10,50' -> [10, 50]; anything else is a one-line usage error."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--topk must be comma-separated positive integers, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"--topk must be comma-separated positive integers, got {text!r}")
    return sorted(set(values))


@click.command("evaluate")
@click.argument("index", type=click.Path(path_type=Path))
@click.option("--topk", default="10,50", show_default=True, help="Comma-separated K values.")
@click.option(
    "--compare",
    type=click.Path(path_type=Path),
    default=None,
    help="A second index of the same keyframes and labels (e.g. the DLBHC baseline).",
)
@click.option(
    "--queries",
    type=click.Path(path_type=Path),
    default=None,
    help="Keyframe ids to query (one per line, or CSV with keyframe_id); default: all annotated.",
)
@click.option(
    "--exclude-same-video/--include-same-video",
    default=True,
    show_default=True,
    help="Drop keyframes of the query's own video from its results (near-duplicates).",
)
@click.option(
    "--rerank",
    is_flag=True,
    help="Rank as two-stage search does (Hamming candidates re-ranked by the stored "
    "descriptors) instead of the paper's codes-only protocol.",
)
@click.option("--candidates", type=click.IntRange(min=1), help="Candidates --rerank re-ranks.")
@click.option("--name", default="proposed", show_default=True, help="Column label of INDEX.")
@click.option(
    "--compare-name", default="baseline", show_default=True, help="Column label of --compare."
)
@click.option("--sheets", default=6, show_default=True, help="Sample queries shown in the HTML.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
def command(
    index: Path,
    topk: str,
    compare: Path | None,
    queries: Path | None,
    exclude_same_video: bool,
    rerank: bool,
    candidates: int | None,
    name: str,
    compare_name: str,
    sheets: int,
    out_dir: Path,
) -> None:
    """Score INDEX per concept (Tables II/III layout) and write a report to --out."""
    from vidhash.eval import concepts, report

    ks = parse_topk(topk)
    if compare is not None and name == compare_name:
        raise UsageError("--name and --compare-name must differ")
    data = {name: concepts.load_index(index)}
    if compare is not None:
        data[compare_name] = concepts.load_index(compare)
        concepts.check_comparable(data[name], data[compare_name])
    query_ids = concepts.read_query_list(queries) if queries is not None else None
    runs = {
        label: concepts.evaluate_concepts(
            d, ks, query_ids, exclude_same_video, rerank=rerank, candidates=candidates
        )
        for label, d in data.items()
    }
    written = report.write_report(out_dir, runs, data, n_sheets=sheets)
    click.echo(written["markdown"].read_text())
    click.echo(f"report: {written['html']}")
