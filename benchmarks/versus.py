"""This checkout against another (e.g. the commit before a change), whole commands, in turn.

Each call is a new process (``python -m vidhash.cli``) run with the other checkout's
package on ``PYTHONPATH``, A B A B ...; wall time includes start-up (imports, model
loading) and is measured around the process, peak RSS is the command's own (see
``search_scale.LAUNCHER``). Ratios are taken pair by pair and their median printed.

* ``index VIDEOS``: ``vidhash index VIDEOS --out <fresh folder>`` per call; keyframes/s =
  the run's keyframes (from its ``--json`` summary) / the process's wall time.
* ``extract VIDEOS``: ``vidhash extract VIDEOS --out <fresh folder>``, the same way.
* ``search-image INDEX IMAGE``: a cold ``vidhash search INDEX --image IMAGE -k 10`` (the
  page cache warm: one untimed call of each first).

    git worktree add /tmp/vh-before <commit>      # or: git archive <commit> | tar x -C DIR
    python benchmarks/versus.py index ../shared/data/videos --compare-checkout /tmp/vh-before
    python benchmarks/versus.py search-image INDEX photo.jpg --compare-checkout /tmp/vh-before
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import _wait_call, load  # noqa: E402  (the launcher that measures RSS)

HERE = str(Path(__file__).resolve().parents[1])


def run(checkout: str, argv: list[str]) -> tuple[float, int, str]:
    """One command; exit 1 (some inputs failed, e.g. the damaged shared videos) counts."""
    env = {**os.environ, "PYTHONPATH": checkout}
    return _wait_call([sys.executable, "-m", "vidhash.cli", *argv], env, ok=(0, 1))


def ingest_call(checkout: str, command: str, videos: str, scratch: Path, extra: list[str]) -> dict:
    out = scratch / command
    shutil.rmtree(out, ignore_errors=True)
    wall, peak, text = run(checkout, [command, videos, "--out", str(out), "--json", *extra])
    keyframes = json.loads(text)["keyframes"]
    return {"wall": wall, "rss": peak, "rate": keyframes / wall, "keyframes": keyframes}


def search_call(checkout: str, index: str, image: str) -> dict:
    wall, peak, text = run(checkout, ["search", index, "--image", image, "-k", "10", "--json"])
    return {"wall": wall, "rss": peak, "hits": [h["keyframe_id"] for h in json.loads(text)["hits"]]}


def report(name: str, runs: list[dict], key: str, unit: str) -> None:
    values = [r[key] for r in runs]
    print(
        f"  {name}: median {statistics.median(values):.3f} {unit} "
        f"(min {min(values):.3f}, max {max(values):.3f}); peak RSS median "
        f"{statistics.median(r['rss'] for r in runs) / 1e6:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["index", "extract", "search-image"])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--compare-checkout", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extra", default="", help="more arguments for both ingest calls")
    args = parser.parse_args()
    args.inputs = [str(Path(p).resolve()) for p in args.inputs]  # calls run in the checkouts
    other = str(Path(args.compare_checkout).resolve())
    sides = {"this checkout": HERE, "compare": other}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.what in ("index", "extract"):
            extra = args.extra.split()
            call = lambda co: ingest_call(co, args.what, args.inputs[0], scratch, extra)  # noqa: E731
            key, unit = "rate", "keyframes/s"
        else:
            call = lambda co: search_call(co, args.inputs[0], args.inputs[1])  # noqa: E731
            key, unit = "wall", "s"
            for checkout in sides.values():
                call(checkout)  # untimed: page cache, byte-compiled files
        print(f"{args.what} {' '.join(args.inputs)}; compare = {other}; {load()}")
        for _ in range(args.repeats):
            for name, checkout in sides.items():
                runs[name].append(call(checkout))
    for name in sides:
        report(name, runs[name], key, unit)
    ratios = [a[key] / b[key] for a, b in zip(runs["this checkout"], runs["compare"], strict=True)]
    print(f"  ratio this/compare, pair by pair: median {statistics.median(ratios):.2f} "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); {load()}")  # fmt: skip
    if args.what != "search-image":
        counts = [runs[name][0]["keyframes"] for name in sides]
        print(f"  keyframes: {counts[0]} vs {counts[1]}")
    else:
        same = runs["this checkout"][0]["hits"] == runs["compare"][0]["hits"]
        print(f"  same hits: {same}")


if __name__ == "__main__":
    main()
