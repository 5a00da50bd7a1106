"""The files a protocol run writes: its summary JSON and its curves as CSV and PNG.

``<name>-summary.json``, ``<name>-precision-at-k.{csv,png}`` and ``<name>-pr-curve.{csv,png}``.
Every CSV starts with a ``# <tag>`` line and every figure carries the tag as its title, the
tag naming protocol, split sizes and model, so a file read on its own still says what it
measured. Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vidhash.eval import metrics
from vidhash.fsutil import atomic_path, atomic_write_bytes


def write_outputs(out: Path, name: str, summary: dict, scores: metrics.RetrievalScores) -> None:
    """Write the summary and both curves, each tagged with the setup the summary names."""
    tag = _tag(summary)
    atomic_write_bytes(out / f"{name}-summary.json", json.dumps(summary, indent=2).encode())
    _write_csv(
        out / f"{name}-precision-at-k.csv",
        ["k", "precision"],
        [(k + 1, float(p)) for k, p in enumerate(scores.precision_at_k)],
        tag,
    )
    _write_csv(
        out / f"{name}-pr-curve.csv",
        ["radius", "precision", "recall"],
        zip(scores.pr_radius, scores.pr_precision, scores.pr_recall, strict=True),
        tag,
    )
    _plot_precision_at_k(out / f"{name}-precision-at-k.png", scores, tag)
    _plot_pr(out / f"{name}-pr-curve.png", scores, tag)


def _tag(summary: dict) -> str:
    """One line naming protocol, split sizes and model, written into every file."""
    return (
        f"{summary['protocol']}{' (reduced)' if summary['reduced'] else ''}: "
        f"{summary['n_queries']} queries / {summary['n_database']} database, "
        f"{summary.get('model_name') or ''} {str(summary['model_id'])[:12]}, "
        f"{summary['code_bits']} bits"
    )


def _write_csv(path: Path, header: list[str], rows: Iterable, tag: str) -> None:
    """A ``# tag`` line, the header, then the numbers in ``%.6g``."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(f"# {tag}\n")
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(f"{float(v):.6g}" for v in row) + "\n")


def _plot_precision_at_k(path: Path, scores: metrics.RetrievalScores, tag: str) -> None:
    """Precision of the top K results, K = 1..max K, averaged over the queries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ks = np.arange(1, len(scores.precision_at_k) + 1)
    ax.plot(ks, scores.precision_at_k)
    ax.set_xlabel("K (top retrieved)")
    ax.set_ylabel("precision@K")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(tag, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_pr(path: Path, scores: metrics.RetrievalScores, tag: str) -> None:
    """Precision against recall, one point per Hamming radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(scores.pr_recall, scores.pr_precision, marker=".")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"PR by Hamming radius 0..{scores.code_bits}\n{tag}", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
