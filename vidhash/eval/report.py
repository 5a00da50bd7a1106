"""Concept evaluation reports: Tables II/III as Markdown and CSV, and a self-contained HTML.

With two runs (``--compare``) the columns follow the paper: for each K, the proposed
model's MAP@K then the baseline's. With one run there is one column per K. The HTML embeds
every image as a base64 PNG, so the single file can be mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vidhash.eval import metrics  # noqa: E402
from vidhash.eval.concepts import DEFINITIONS, ConceptEvaluation, IndexData  # noqa: E402
from vidhash.fsutil import atomic_path, atomic_write_bytes  # noqa: E402
from vidhash.index.search.sheet import hit_caption, load_rgb, make_contact_sheet  # noqa: E402

OVERALL = "overall"


def concept_tables(runs: dict[str, ConceptEvaluation]) -> dict[str, pd.DataFrame]:
    """One table per concept group: concept | top-K <run> ... | plus an overall row.

    Columns go K-major (top-10 proposed, top-10 baseline, top-50 proposed, ...), as in the
    paper's Tables II/III; a single run gets one column per K (top-10, top-50). The overall
    row is the equally weighted mean over concepts.
    """
    first = next(iter(runs.values()))
    topks = first.topks
    groups = sorted(first.table["group"].unique())
    tables: dict[str, pd.DataFrame] = {}
    for group in groups:
        base = first.table[first.table["group"] == group][["concept", "n_queries"]]
        table = base.rename(columns={"n_queries": "queries"}).reset_index(drop=True)
        for k in topks:
            for name, run in runs.items():
                t = run.table[run.table["group"] == group].set_index("concept")
                col = f"top-{k} {name}" if len(runs) > 1 else f"top-{k}"
                table[col] = table["concept"].map(t[f"map@{k}"]).to_numpy()
        score_cols = [c for c in table.columns if c.startswith("top-")]
        overall = {"concept": OVERALL, "queries": int(table["queries"].sum())}
        overall.update({c: float(table[c].dropna().mean()) for c in score_cols})
        tables[group] = pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
    return tables


def table_markdown(table: pd.DataFrame, group: str) -> str:
    """A Markdown table with 4 decimals; the overall row in bold."""
    cols = list(table.columns)
    lines = [f"### {group}", "", "| " + " | ".join(cols) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float) and c != "queries":
                cells.append("n/a" if np.isnan(v) else f"{v:.4f}")
            else:
                cells.append(str(int(v)) if c == "queries" else str(v))
        if row["concept"] == OVERALL:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def bar_chart(table: pd.DataFrame, group: str) -> bytes:
    """Grouped bars: one cluster per concept (and overall), one bar per run x K."""
    cols = [c for c in table.columns if c.startswith("top-")]
    labels = table["concept"].tolist()
    x = np.arange(len(labels))
    width = 0.8 / max(len(cols), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 3.8))
    for i, col in enumerate(cols):
        ax.bar(x + (i - (len(cols) - 1) / 2) * width, table[col].fillna(0), width, label=col)
    ax.set_xticks(x, labels, rotation=40, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MAP@K")
    ax.set_title(f"{group} concepts")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def contact_sheet(
    index: IndexData,
    run: ConceptEvaluation,
    query_pos: int,
    concept: tuple[str, str],
    out_path: Path,
    n_results: int = 10,
    title: str = "",
) -> Path:
    """Query keyframe + its top results via ``vidhash.index.search.sheet`` (the same sheets as
    ``vidhash search --sheet``): green border = shares the concept (hit), red = miss."""
    kf = index.keyframes
    row_of = {kid: i for i, kid in enumerate(kf["keyframe_id"])}
    qrow = row_of[run.query_ids[query_pos]]
    labelled = set(
        index.annotations.loc[
            (index.annotations["group"] == concept[0])
            & (index.annotations["concept"] == concept[1]),
            "keyframe_id",
        ]
    )

    def image(row: int) -> np.ndarray | None:
        rel = kf["image_path"].iat[row] if "image_path" in kf else None
        return load_rgb(index.path / str(rel)) if rel is not None and not pd.isna(rel) else None

    results = []
    for rank, row in enumerate(run.rankings[query_pos][:n_results]):
        if row < 0:
            break
        caption = hit_caption(
            str(kf["video_path"].iat[row]),
            float(kf["pts_time"].iat[row]),
            int(run.distances[query_pos][rank]),
        )
        results.append(
            (image(row), f"#{rank + 1} {caption}", kf["keyframe_id"].iat[row] in labelled)
        )
    return make_contact_sheet(image(qrow), results, out_path, title=title)


def sample_queries(
    run: ConceptEvaluation, n: int = 6, seed: int = 0
) -> list[tuple[int, tuple[str, str]]]:
    """Up to ``n`` (query position, concept) pairs, spread over concepts, seeded."""
    rng = random.Random(seed)
    pos_of = {kid: i for i, kid in enumerate(run.query_ids)}
    by_concept: dict[tuple[str, str], list[str]] = {}
    for kid, g, c in run.per_query[["keyframe_id", "group", "concept"]].itertuples(index=False):
        by_concept.setdefault((g, c), []).append(kid)
    concepts = sorted(by_concept)
    rng.shuffle(concepts)
    return [(pos_of[rng.choice(by_concept[c])], c) for c in concepts[:n]]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _definitions_html() -> str:
    text = DEFINITIONS + "\n\n" + (metrics.__doc__ or "").split("Definitions", 1)[-1]
    return f"<pre>{html.escape(text)}</pre>"


def write_report(
    out_dir: str | Path,
    runs: dict[str, ConceptEvaluation],
    indexes: dict[str, IndexData],
    n_sheets: int = 6,
    seed: int = 0,
) -> dict[str, Path]:
    """Write tables.md, table-<group>.csv, per-query.csv, summary.json, sheets/*.png and
    report.html (which embeds the charts and sheets, so it stands alone).

    Returns the written paths by name. Every file is written atomically.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = concept_tables(runs)
    written = {"markdown": out / "tables.md"}
    atomic_write_bytes(written["markdown"], report_markdown(tables, runs).encode())
    written.update(_write_csvs(out, tables, runs))
    written["summary"] = out / "summary.json"
    summary = json.dumps(_summary(tables, runs), indent=2, default=str)
    atomic_write_bytes(written["summary"], summary.encode())
    written["html"] = out / "report.html"
    body = _html(tables, runs, indexes, n_sheets, seed, out / "sheets")
    atomic_write_bytes(written["html"], body.encode())
    return written


def report_markdown(tables: dict[str, pd.DataFrame], runs: dict[str, ConceptEvaluation]) -> str:
    """tables.md: what was run (one line per run, then the shared settings), then the tables."""
    header = ["# Concept retrieval evaluation", ""]
    for name, run in runs.items():
        s = run.settings
        stats = s.get("code_stats") or {}
        header.append(
            f"- **{name}**: `{s['index']}`, model {s['model']}, {s['code_bits']} bits, "
            f"{s['keyframes']} keyframes, {s['queries']} queries; "
            f"{stats.get('distinct_codes')} distinct codes, largest bucket "
            f"{stats.get('largest_bucket')}, mean bit imbalance {stats.get('mean_bit_imbalance')}"
        )
    first = next(iter(runs.values())).settings
    header += [
        f"- top-K: {', '.join(map(str, first['topk']))}; same-video keyframes "
        f"{'excluded' if first['exclude_same_video'] else 'included'}",
        f"- ranking: {first.get('protocol', 'codes only')}",
        "- cells: MAP@K (DLBHC AP@K, mean over the concept's queries); overall = mean over "
        "concepts, equally weighted",
        "",
    ]
    return "\n".join(header) + "\n" + "\n".join(table_markdown(t, g) for g, t in tables.items())


def _write_csvs(
    out: Path, tables: dict[str, pd.DataFrame], runs: dict[str, ConceptEvaluation]
) -> dict[str, Path]:
    """table-<group>.csv per group, then per-query.csv (every run's APs, a ``run`` column)."""
    written: dict[str, Path] = {}
    for group, table in tables.items():
        path = out / f"table-{group}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        written[f"csv-{group}"] = path
    per_query = pd.concat(
        [run.per_query.assign(run=name) for name, run in runs.items()], ignore_index=True
    )
    written["per-query"] = out / "per-query.csv"
    with atomic_path(written["per-query"]) as tmp:
        per_query.to_csv(tmp, index=False)
    return written


def _summary(tables: dict[str, pd.DataFrame], runs: dict[str, ConceptEvaluation]) -> dict:
    """summary.json: every run's settings, its overall MAP@K per group, and the tables."""
    return {
        "runs": {name: run.settings for name, run in runs.items()},
        "overall": {
            name: run.overall().set_index("group").to_dict(orient="index")
            for name, run in runs.items()
        },
        "tables": {g: t.to_dict(orient="records") for g, t in tables.items()},
    }


_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 12px}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    "table.headline td,table.headline th{font-size:1.1em;padding:6px 12px}"
    ".up{color:#176b2c}.down{color:#a01c1c}.lede{color:#444}"
    "details{margin:8px 0}summary{cursor:pointer;font-weight:bold}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;font-size:.85em}"
)


def headline_table(tables: dict[str, pd.DataFrame], runs: dict[str, ConceptEvaluation]) -> str:
    """One row per concept group with its overall MAP@K per run, and, for two runs, the
    difference (first run minus second): what a reader opens the report for."""
    names = list(runs)
    topks = next(iter(runs.values())).topks
    head = ["<th>group</th>", "<th>concepts</th>"]
    for k in topks:
        head += [f"<th>MAP@{k} {html.escape(n)}</th>" for n in names]
        if len(names) == 2:
            head.append(f"<th>&Delta; MAP@{k}</th>")
    rows = []
    for group, table in tables.items():
        overall = table[table["concept"] == OVERALL].iloc[0]
        cells = [f"<td>{html.escape(group)}</td>", f"<td>{len(table) - 1}</td>"]
        for k in topks:
            values = [overall[f"top-{k} {n}" if len(names) > 1 else f"top-{k}"] for n in names]
            cells += [f"<td>{_fmt(v)}</td>" for v in values]
            if len(names) == 2:
                delta = values[0] - values[1]
                cls = "up" if delta > 0 else "down" if delta < 0 else ""
                cells.append(f"<td class='{cls}'>{delta:+.4f}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table class='headline'><thead><tr>" + "".join(head) + "</tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
    )  # fmt: skip


def _fmt(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"


def summarise_config(config: dict | None) -> dict | None:
    """A model config for reading: the per-epoch training history becomes its length and
    its last entry (the full history stays in the checkpoint and summary.json)."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    train = out.get("train")
    if isinstance(train, dict) and isinstance(train.get("history"), list):
        history = train["history"]
        out["train"] = {
            **{k: v for k, v in train.items() if k != "history"},
            "history": {"epochs": len(history), "last": history[-1] if history else None},
        }
    return out


def _settings_html(name: str, run: ConceptEvaluation) -> str:
    s = run.settings
    stats = s.get("code_stats") or {}
    facts = {
        "index": s.get("index"),
        "model": s.get("model"),
        "model sha256": s.get("model_id"),
        "code bits": s.get("code_bits"),
        "keyframes / queries": f"{s.get('keyframes')} / {s.get('queries')}",
        "distinct codes": stats.get("distinct_codes"),
        "largest bucket": stats.get("largest_bucket"),
        "mean bit imbalance": stats.get("mean_bit_imbalance"),
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    config = json.dumps(summarise_config(s.get("model_config")), indent=1, default=str)
    return (
        f"<details><summary>{html.escape(name)}: {html.escape(str(s.get('model')))}</summary>"
        f"<table>{rows}</table><details><summary>model config</summary>"
        f"<pre>{html.escape(config)}</pre></details></details>"
    )


def _html(
    tables: dict[str, pd.DataFrame],
    runs: dict[str, ConceptEvaluation],
    indexes: dict[str, IndexData],
    n_sheets: int,
    seed: int,
    sheets_dir: Path,
) -> str:
    """Results first (headline table, charts, per-concept tables, sample queries); the
    settings, model configs and definitions follow, folded."""
    first = next(iter(runs.values())).settings
    names = " vs ".join(f"<b>{html.escape(n)}</b> ({html.escape(str(r.settings['model']))})"
                        for n, r in runs.items())  # fmt: skip
    exclusion = "excluded" if first["exclude_same_video"] else "included"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>vidhash evaluation</title><style>{_STYLE}</style></head><body>",
        "<h1>Concept retrieval evaluation</h1>",
        f"<p class='lede'>{names}: {first['queries']} queries over {first['keyframes']} "
        f"keyframes; MAP@K = mean AP@K over a concept's queries, overall = mean over "
        f"concepts; same-video keyframes {exclusion}; ranking: "
        f"{html.escape(str(first.get('protocol', 'codes only')))}.</p>",
        headline_table(tables, runs),
    ]
    for group, table in tables.items():
        parts.append(_img_tag(bar_chart(table, group), f"{group} MAP@K bar chart"))
    parts.append("<h2>Per concept</h2>")
    for group, table in tables.items():
        parts.append(f"<h3>{html.escape(group)}</h3>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="n/a"))
    parts.append("<h2>Sample queries</h2>")
    parts.append(
        "<p>Green frame: the result shares the query's concept (hit); red: it does not "
        "(miss). d = Hamming distance.</p>"
    )
    first_name = next(iter(runs))
    for i, (query_pos, concept) in enumerate(sample_queries(runs[first_name], n_sheets, seed)):
        query_id = runs[first_name].query_ids[query_pos]
        parts.append(f"<h3>{html.escape(query_id)} &mdash; {html.escape('/'.join(concept))}</h3>")
        for name, run in runs.items():
            pos = run.query_ids.index(query_id)
            n_res = min(10, run.rankings.shape[1])
            path = sheets_dir / f"{i:02d}-{_safe(name)}.png"
            title = f"{name}: {concept[1]} ({concept[0]}), query {query_id}"
            contact_sheet(indexes[name], run, pos, concept, path, n_res, title)
            parts.append(_img_tag(path.read_bytes(), f"{name} results for {query_id}"))
    parts.append("<h2>Settings</h2>")
    parts += [_settings_html(name, run) for name, run in runs.items()]
    parts.append("<details><summary>Definitions</summary>" + _definitions_html() + "</details>")
    parts.append("</body></html>")
    return "\n".join(parts)
