"""Search at archive scale (issue 14): the search file, multi-index hashing, their costs.

Each subcommand prints the figures docs/RESULTS.md quotes:

* ``build``: a synthetic on-disk index written through ``IndexStore`` (as ``vidhash index``
  writes one: a part per input, the search file kept at every commit) of clustered 48-bit
  codes: ``--centres`` random centres, each code a centre with 0 to ``--flips`` random
  bits flipped, 1,000 keyframes per input.
* ``cli``: cold ``vidhash search INDEX --keyframe ID -k 10 --json`` calls, each a new
  process, the page cache warm (one untimed call first): wall time and peak RSS of each
  call (``os.wait4``). ``--compare-checkout DIR`` times the same calls with the vidhash of
  another checkout (e.g. one from before the search file) on the same index.
* ``mih``: exact top-k queries per second, multi-index hashing vs the flat scan
  (``HammingSearcher``: FAISS ``IndexBinaryFlat``, counting top-k, what ``Index.search``
  ran before), side by side in one process, same codes, checking that every query gets
  identical rows and distances. Codes: clustered as above, or ``--real INDEX``: the codes
  of a real index replicated with 0 to ``--flips`` random bit flips. Queries: codes of the
  database (keyframe queries) and fresh codes from the same distribution. ``--shots S``
  first makes S shot codes (a real code with 0 to ``--shot-flips`` bits flipped), then
  the keyframes from those: a real code's biases, an archive's variety. ``--index PATH``
  instead times ``Index.search_arrays`` (every segment, merged by keyframe id) on an
  on-disk index against the flat scan of all its codes.
* ``cost``: the engine's per-segment choice of MIH or the flat scan by predicted cost
  (:func:`vidhash.index.search.engine.plan`): ``Index.search_arrays`` against FAISS
  ``IndexBinaryFlat`` on the raw 48-bit codes (6 bytes, FAISS defaults: the baseline) and
  the padded flat scan (``HammingSearcher``), side by side in one process, one thread, on
  (a) ``--codes`` uniform random codes and (b) as many clustered ones (``--centres``,
  ``--flips``), fresh queries of the same kind. The codes are written as segment files in
  the layout the writer leaves (``--per-video`` rows an input, merged like a binary
  counter: 1M rows -> 512k, 256k, 128k (MIH tables), 64k, 32k, 8k) and memory-mapped as
  ``Index.open`` maps them. Prints the engine each segment's plan picked and whether
  every answer equals the flat scan's (rows, distances, ties by keyframe id).
* ``rerank``: warm latency of one query at a time through ``Index.search`` on an on-disk
  index with descriptors: two-stage (the codes' top ``--candidates`` re-ranked by the
  stored descriptors) against codes only, alternating passes, the same queries.
* ``write-cost``: ``vidhash index VIDEOS`` into a fresh index with and without keeping the
  search file (``VIDHASH_SEARCH_FILE=off``), alternating, ``--repeats`` times each.

``build --descriptor-dims D`` (default 256, as the shipped models) also stores a float16
unit descriptor per keyframe: its centre's random direction plus noise, so that
re-ranking has real work to do; ``--descriptor-dims 0`` builds a codes-only index.

    python benchmarks/search_scale.py build --keyframes 1000000 --out /work/bench-data/idx-1m
    python benchmarks/search_scale.py cli /work/bench-data/idx-1m --calls 11
    OMP_WAIT_POLICY=PASSIVE python benchmarks/search_scale.py mih --codes 10000000
    OMP_NUM_THREADS=1 python benchmarks/search_scale.py cost --codes 1000000
    python benchmarks/search_scale.py rerank /work/bench-data/idx-1m --queries 200
    python benchmarks/search_scale.py write-cost ../shared/data/videos --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from search import interleaved_qps  # the sibling benchmark's side-by-side timer

from vidhash.fsutil import keyframe_id
from vidhash.index.search import engine
from vidhash.index.search.flat import HammingSearcher
from vidhash.index.search.index import Index
from vidhash.index.search.segment import NULLS, assemble, fixed_ids
from vidhash.index.store.codes import pad_to_64

BITS = 48
MODEL = {"model_id": "5" * 64, "model_name": "bench", "model_config": {}, "code_bits": BITS}


def perturbed(n: int, centres: np.ndarray, flips: int, seed: int) -> np.ndarray:
    """n codes (as uint64, 48 bits on top): a random centre each, 0..flips bits flipped
    (uniformly many, at random places; a place may be drawn twice)."""
    rng = np.random.default_rng(seed)
    words = centres[rng.integers(0, len(centres), n)]
    count = rng.integers(0, flips + 1, n)
    for f in range(1, flips + 1):
        chosen = np.flatnonzero(count >= f)
        words[chosen] ^= np.uint64(1) << rng.integers(16, 64, len(chosen)).astype(np.uint64)
    return words


def packed(words: np.ndarray) -> np.ndarray:
    """uint64 words (48 code bits on top) -> (n, 6) packed codes."""
    return words.astype(">u8").view(np.uint8).reshape(len(words), 8)[:, :6].copy()


def clustered_codes(n: int, centres: np.ndarray, flips: int, seed: int) -> np.ndarray:
    """n packed 48-bit codes: a random centre each, 0..flips random bits flipped."""
    return packed(perturbed(n, centres, flips, seed))


def random_centres(count: int, seed: int) -> np.ndarray:
    """Centres as big-endian-valued uint64 with the 48 code bits on top."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << BITS, count, dtype=np.uint64) << np.uint64(64 - BITS)


def real_centres(index: Path) -> np.ndarray:
    view = Index.open(index).view
    codes = np.concatenate([seg.arrays["codes"] for seg in view.segments])
    return np.unique(codes.copy().view(">u8")[:, 0].astype(np.uint64))


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------- build


def build(args: argparse.Namespace) -> None:
    from vidhash.index import IndexStore

    centres = random_centres(args.centres, seed=0)
    dims = args.descriptor_dims
    directions = np.random.default_rng(1).standard_normal((args.centres, max(dims, 1)))
    per = args.per_video
    start = time.perf_counter()
    meta = {**MODEL, "descriptor_dims": dims}
    with IndexStore.open(args.out, model_meta=meta, create=True) as store:
        done = set(store.committed())
        for v in range(-(-args.keyframes // per)):
            path = f"/bench/videos/v{v:06d}.mp4"
            if path in done:
                continue
            content = hashlib.sha256(f"bench video {v}".encode()).hexdigest()
            n = min(per, args.keyframes - v * per)
            codes = clustered_codes(n, centres, args.flips, v)
            frames = [
                {"keyframe_id": keyframe_id(content, 2.0 * i), "pts_time": 2.0 * i, "code": c}
                for i, c in enumerate(codes)
            ]
            if dims:
                rng = np.random.default_rng(v)
                desc = directions[rng.integers(0, len(directions), n)]
                desc = desc + 0.5 * rng.standard_normal(desc.shape)
                desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype("<f2")
                for frame, d in zip(frames, desc, strict=True):
                    frame["descriptor"] = d.tobytes()
            store.commit({"video_path": path, "content_hash": content, "status": "ok"}, frames)
            if v % 500 == 0:
                print(f"  {v * per:,} keyframes, {time.perf_counter() - start:.0f} s", flush=True)
    size = sum(p.stat().st_size for p in (Path(args.out) / "search").iterdir())
    manifest = json.loads((Path(args.out) / "search" / "manifest.json").read_text())
    print(
        f"{args.keyframes:,} keyframes in {time.perf_counter() - start:.0f} s; search file "
        f"{size / 1e6:.0f} MB in {len(manifest['segments'])} segments "
        f"({[s['rows'] for s in manifest['segments']]} rows)"
    )


# ---------------------------------------------------------------------------------- cli


def warm(root: Path) -> int:
    """Read every file of the index once, so the calls find it in the page cache."""
    total = 0
    for folder in ("search", "keyframes", "videos", "meta", "annotations"):
        for path in (root / folder).glob("*") if (root / folder).is_dir() else ():
            with open(path, "rb") as fh:
                while chunk := fh.read(8 << 20):
                    total += len(chunk)
    return total


def cli(args: argparse.Namespace) -> None:
    root = str(Path(args.index).resolve())
    print(f"page cache: read {warm(Path(root)) / 1e6:,.0f} MB")
    index = Index.open(args.index)
    rng = np.random.default_rng(1)
    segs = index.view.segments
    picks = [segs[s].keyframe_id(int(rng.integers(0, len(segs[s])))) for s in
             rng.choice(len(segs), args.calls, p=[len(x) / len(index) for x in segs])]  # fmt: skip
    checkouts = {"this checkout": str(Path(__file__).resolve().parents[1])}
    if args.compare_checkout:
        checkouts["compare: " + args.compare_checkout] = str(Path(args.compare_checkout).resolve())
    print(f"{args.index}: {len(index):,} keyframes in {len(segs)} segments; {load()}")
    for name, checkout in checkouts.items():
        env = {**os.environ, "PYTHONPATH": checkout, "OMP_WAIT_POLICY": "PASSIVE"}
        walls, rss = [], []
        for i, kid in enumerate([picks[0], *picks]):
            argv = [sys.executable, "-m", "vidhash.cli", "search", root, "--keyframe", kid]
            argv += ["--codes-only"] if args.codes_only else []
            wall, peak, out = _wait_call([*argv, "-k", "10", "--json"], env)
            hits = json.loads(out)["hits"]
            expected = index.search_ids(kid, k=10, rerank=not args.codes_only)
            assert [(h["distance"], h["keyframe_id"]) for h in hits] == [
                (h.distance, h.keyframe_id) for h in expected
            ]
            if i:  # the first call warms the page cache
                walls.append(wall)
                rss.append(peak)
        print(
            f"  {name}: {len(walls)} calls, wall median {statistics.median(walls):.3f} s "
            f"(min {min(walls):.3f}, max {max(walls):.3f}); peak RSS median "
            f"{statistics.median(rss) / 1e6:.0f} MB (max {max(rss) / 1e6:.0f} MB); {load()}"
        )


# Runs one command and reports its wall time and peak RSS. It exists because a child's
# ru_maxrss also counts the memory of the process that forked it (Linux folds the forked
# copy's high-water mark in at exec): forked from this small launcher, not from the
# benchmark (which holds an index open), the figure is the command's own.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
print(os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss * 1024, file=sys.stderr)
"""


def _wait_call(argv: list[str], env: dict, ok: tuple[int, ...] = (0,)) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one command (see LAUNCHER), run in the
    checkout on PYTHONPATH (``-m`` puts the working directory first on sys.path)."""
    with tempfile.TemporaryFile() as out:
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *argv],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=env["PYTHONPATH"],
        )
        last = done.stderr.decode().strip().splitlines()[-1].split()
        code, wall, peak = int(last[0]), float(last[1]), int(last[2])
        if code not in ok:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-800:]}")
        out.seek(0)
        return wall, peak, out.read().decode()


# ---------------------------------------------------------------------------------- mih


def segment_of(
    codes: np.ndarray, mih_bits: int | None = None, first: int = 0, mih_min_rows: int | None = 0
):
    """An in-memory segment of these codes (MIH tables from ``mih_min_rows`` rows: always by
    default); keyframe ids ``first``, ``first + 1``, ...: rows in id order = given order."""
    n = len(codes)
    padded = np.zeros((n, 8), np.uint8)
    padded[:, :6] = codes
    rows = {
        "codes": padded,
        "ids": fixed_ids([f"{first + i:012d}" for i in range(n)]),
        "video": (np.arange(n) // 1000).astype(np.int32),
        "pts": np.zeros(n),
        **{name: np.zeros(n, dtype) for name, dtype in NULLS.items()},
        "image": np.zeros(n, np.uint8),
    }
    videos = -(-n // 1000)
    return assemble(
        BITS, rows, {}, [""] * videos, [""] * videos, np.zeros((videos, 2)), mih_min_rows, mih_bits
    )


def rerank_bench(args: argparse.Namespace) -> None:
    """Warm single-query latency: two-stage against codes only, same queries, alternating."""
    index = Index.open(args.index)
    if not index.descriptor_dims:
        sys.exit(f"{args.index} stores no descriptors: build it with --descriptor-dims")
    rng = np.random.default_rng(2)
    segs = index.view.segments
    weights = [len(x) / len(index) for x in segs]
    chosen = rng.choice(len(segs), args.queries, p=weights)
    picks = [(s, int(rng.integers(0, len(segs[s])))) for s in chosen]
    codes = np.stack([segs[s].code(r, index.nbytes) for s, r in picks])
    desc = np.stack([np.asarray(segs[s].desc[r]) for s, r in picks])

    def one_by_one(rerank: bool):
        def run(queries):
            return [index.search(codes[q], k=args.k, descriptors=desc[q], rerank=rerank,
                                 candidates=args.candidates) for q in queries]  # fmt: skip

        return run

    queries = np.arange(len(picks))
    sides = {"two-stage": (one_by_one(True), queries), "codes only": (one_by_one(False), queries)}
    best, results = interleaved_qps(sides, rounds=3, min_seconds=args.seconds)
    same = sum(
        {h.keyframe_id for h in a} == {h.keyframe_id for h in b}
        for a, b in zip(results["two-stage"], results["codes only"], strict=True)
    )
    print(f"{args.index}: {len(index):,} keyframes in {len(segs)} segments, "
          f"{index.descriptor_dims}-d descriptors; {len(picks)} keyframe queries, k={args.k}, "
          f"{args.candidates} candidates; {load()}")  # fmt: skip
    for name, qps in best.items():
        print(f"  {name}: {1e3 / qps:.2f} ms per query ({qps:.0f} q/s, best pass)")
    ratio = best["codes only"] / best["two-stage"]
    print(f"  two-stage / codes-only latency: {ratio:.2f}x; same top-{args.k} set: "
          f"{same}/{len(picks)} queries")  # fmt: skip


def index_bench(args: argparse.Namespace) -> None:
    """MIH vs flat through ``Index.search_arrays`` on an on-disk index (all its segments)."""
    import faiss

    index = Index.open(args.index)
    segs, dead = index.view.segments, index.view.dead
    live = [s.live_mask(d) for s, d in zip(segs, dead, strict=True)]
    codes = np.concatenate(
        [np.asarray(s.arrays["codes"])[m if m is not None else slice(None)]
         for s, m in zip(segs, live, strict=True)]
    )[:, : index.nbytes]  # fmt: skip
    order = index._id_order()
    if order is not None:
        codes = codes[order[0]]  # row numbers are in keyframe id order
    print(f"{args.index}: {len(index):,} keyframes in {len(segs)} segments; top-{args.k}; {load()}")
    flat = HammingSearcher(codes)
    rng = np.random.default_rng(2)
    queries = codes[rng.integers(0, len(codes), args.queries)]
    faiss.omp_set_num_threads(1)
    qps, answers = interleaved_qps(
        {
            "flat": (lambda q: flat.search(q, args.k), queries[: args.flat_queries]),
            "index": (lambda q: index.search_arrays(q, args.k), queries),
        },
        3,
        args.seconds,
    )
    fd, fr = flat.search(queries, args.k)
    d, r = answers["index"]
    same = all(
        np.array_equal(d[i], fd[i]) and np.array_equal(r[i], fr[i]) for i in range(len(queries))
    )
    print(
        f"  database codes, FAISS threads 1: flat {qps['flat']:,.0f} q/s, Index.search_arrays "
        f"{qps['index']:,.0f} q/s: {qps['index'] / qps['flat']:.1f}x; identical on "
        f"{len(queries)}: {same}; {load()}"
    )


def mih_bench(args: argparse.Namespace) -> None:
    import faiss

    if args.index:
        return index_bench(args)
    if args.real:
        centres = real_centres(Path(args.real))
        kind = f"{len(centres)} distinct real codes of {args.real}"
        if args.shots:
            centres = perturbed(args.shots, centres, args.shot_flips, seed=4)
            kind += f" -> {args.shots:,} shots (0-{args.shot_flips} bits flipped)"
    else:
        centres = random_centres(args.centres, seed=0)
        kind = f"{args.centres:,} random centres"
    codes = clustered_codes(args.codes, centres, args.flips, seed=1)
    print(f"{args.codes:,} codes: {kind}, 0-{args.flips} bits flipped; top-{args.k}; {load()}")
    start = time.perf_counter()
    seg = segment_of(codes, args.mih_bits)
    spec = seg.tables.spec
    print(f"  MIH tables ({len(spec)} x {spec[0][1]} bits) in {time.perf_counter() - start:.1f} s")
    flat = HammingSearcher(codes)
    rng = np.random.default_rng(2)
    sets = {
        "database codes": codes[rng.integers(0, len(codes), args.queries)],
        "fresh codes": clustered_codes(args.queries, centres, args.flips, seed=3),
    }
    none = np.zeros(0, np.int32)
    for name, queries in sets.items():
        padded = pad_to_64(queries)
        for threads in sorted({1, faiss.omp_get_max_threads()}):
            faiss.omp_set_num_threads(threads)
            qps, answers = interleaved_qps(
                {
                    "flat": (lambda q: flat.search(q, args.k), queries[: args.flat_queries]),
                    "mih": (
                        lambda q: engine.search_segment(seg, none, q, args.k, None, use="mih"),
                        padded,
                    ),
                },
                3,
                args.seconds,
            )
            flat_qps, mih_qps = qps["flat"], qps["mih"]
            (fd, fr), answers = answers["flat"], answers["mih"]
            if threads == 1:  # every query, once: the same rows and distances as the flat scan
                fd, fr = flat.search(queries, args.k)
            n = len(fd)
            same = all(
                np.array_equal(answers[i][0], fd[i]) and np.array_equal(answers[i][1], fr[i])
                for i in range(n)
            )
            print(
                f"  {name}, FAISS threads {threads}: flat {flat_qps:,.0f} q/s, MIH "
                f"{mih_qps:,.0f} q/s: {mih_qps / flat_qps:.1f}x; identical on {n}: {same}; {load()}"
            )


# ---------------------------------------------------------------------------------- cost


def writer_layout(n: int, per: int) -> list[int]:
    """Segment sizes the writer's binary counter leaves after ``n`` rows, ``per`` an input."""
    full, rest = divmod(n, per)
    sizes = [per << b for b in reversed(range(full.bit_length())) if full >> b & 1]
    return sizes + [rest] * (rest > 0)


def on_disk_index(codes: np.ndarray, per: int, folder: Path) -> Index:
    """An ``Index`` over segment files of these codes, memory-mapped as ``Index.open`` maps
    them, in the writer's layout (MIH tables from ``MIH_MIN_ROWS``); rows in code order."""
    from vidhash.index.search.file import SearchView
    from vidhash.index.search.segment import Segment

    segs, first = [], 0
    for i, size in enumerate(writer_layout(len(codes), per)):
        path = folder / f"seg-{i}.bin"
        segment_of(codes[first : first + size], first=first, mih_min_rows=None).save(path)
        segs.append(Segment.load(path, BITS))
        first += size
    return Index(folder, SearchView(MODEL, segs, [np.zeros(0, np.int32)] * len(segs), None))


def cost_bench(args: argparse.Namespace) -> None:
    """Index.search_arrays (the engine's per-segment choice) vs FAISS on raw 48-bit codes and
    the padded flat scan, on uniform and clustered codes, one thread, identical answers."""
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(2)
    centres = random_centres(args.centres, seed=0)
    kinds = {
        "uniform": (rng.integers(0, 256, (args.codes, 6), np.uint8),
                    rng.integers(0, 256, (args.queries, 6), np.uint8)),
        "clustered": (clustered_codes(args.codes, centres, args.flips, seed=1),
                      clustered_codes(args.queries, centres, args.flips, seed=3)),
    }  # fmt: skip
    for kind, (codes, queries) in kinds.items():
        with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
            cost_of(kind, codes, queries, on_disk_index(codes, args.per_video, Path(tmp)), args)


def cost_of(kind: str, codes: np.ndarray, queries: np.ndarray, index: Index, args) -> None:
    """One line of figures for one kind of codes: q/s of the three sides, the engines the
    chooser picked per segment, whether every answer is identical to the flat scan's."""
    import faiss

    segs = index.view.segments
    picks = [engine.plan(s, args.k, None, len(queries)) for s in segs]
    raw = faiss.IndexBinaryFlat(BITS)  # FAISS defaults: the baseline
    raw.add(codes)
    flat = HammingSearcher(codes)
    qps, answers = interleaved_qps(
        {
            "raw": (lambda q: raw.search(q, args.k), queries),
            "flat": (lambda q: flat.search(q, args.k), queries),
            "index": (lambda q: index.search_arrays(q, args.k), queries),
        },
        3,
        args.seconds,
    )
    (fd, fr), (d, r) = answers["flat"], answers["index"]
    same = all(
        np.array_equal(d[i], fd[i]) and np.array_equal(r[i], fr[i]) for i in range(len(queries))
    ) and np.array_equal(np.sort(answers["raw"][0], axis=1), fd)
    chosen = ", ".join(
        f"{len(s):,} {p.engine}" + ("" if s.tables else " (no tables)")
        for s, p in zip(segs, picks, strict=True)
    )
    print(
        f"{len(codes):,} {kind} codes, on disk in {len(segs)} segments ({chosen}); "
        f"{len(queries)} fresh queries, top-{args.k}, 1 thread; {load()}\n"
        f"  FAISS IndexBinaryFlat raw 48-bit {qps['raw']:,.0f} q/s | flat scan padded "
        f"(HammingSearcher) {qps['flat']:,.0f} q/s | Index.search_arrays {qps['index']:,.0f} "
        f"q/s = {qps['index'] / qps['raw']:.2f}x raw, {qps['index'] / qps['flat']:.2f}x flat | "
        f"identical: {same}",
        flush=True,
    )


# ---------------------------------------------------------------------------------- write cost


def write_cost(args: argparse.Namespace) -> None:
    times: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        for r in range(args.repeats):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                out = Path(tmp) / f"idx-{mode}-{r}"
                env = {**os.environ, "VIDHASH_SEARCH_FILE": mode}
                argv = [sys.executable, "-m", "vidhash.cli", "index", args.videos, "--out", out]
                start = time.perf_counter()
                done = subprocess.run([*map(str, argv), "--json"], env=env, capture_output=True)
                times[mode].append(time.perf_counter() - start)
                if done.returncode not in (0, 1):  # 1: a partly decoded input, as expected here
                    raise RuntimeError(done.stderr.decode()[-800:])
                print(f"  search file {mode}: {times[mode][-1]:.1f} s; {load()}", flush=True)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    runs = ", ".join(f"{m} " + " ".join(f"{t:.1f}" for t in times[m]) for m in times)
    print(
        f"vidhash index {args.videos}: median {on:.1f} s keeping the search file, {off:.1f} s "
        f"without: {100 * (on / off - 1):+.1f}% (runs, s: {runs})"
    )
    inside, total = time_in_search_file(Path(args.videos), args.scratch)
    print(
        f"in one process: {inside:.2f} s of the {total:.1f} s run were spent keeping the "
        f"search file ({100 * inside / total:.1f}%); {load()}"
    )


def time_in_search_file(videos: Path, scratch: str | None) -> tuple[float, float]:
    """(seconds inside the search file's writer, seconds of the whole run) of one
    ``build_index`` run in this process: the cost without the noise of two runs."""
    from vidhash.index.search.writer import SearchWriter
    from vidhash.ingest import build_index
    from vidhash.models import load_model

    spent = [0.0]

    def timed(method):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                spent[0] += time.perf_counter() - start

        return wrapper

    SearchWriter.sync = timed(SearchWriter.sync)
    SearchWriter.update = timed(SearchWriter.update)
    model = load_model("default")
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        start = time.perf_counter()
        build_index(videos, Path(tmp) / "idx", model, progress=False)
        return spent[0], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="a synthetic on-disk index through IndexStore")
    p.add_argument("--keyframes", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--per-video", type=int, default=1000)
    p.add_argument("--centres", type=int, default=10_000)
    p.add_argument("--flips", type=int, default=4)
    p.add_argument("--descriptor-dims", type=int, default=256)
    p = sub.add_parser("rerank", help="warm latency, two-stage vs codes only")
    p.add_argument("index")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0)
    p = sub.add_parser("cli", help="cold vidhash search calls: wall time and peak RSS")
    p.add_argument("index")
    p.add_argument("--calls", type=int, default=11)
    p.add_argument("--compare-checkout", help="also time the vidhash of this checkout")
    p.add_argument("--codes-only", action="store_true", help="time `--codes-only` calls")
    p = sub.add_parser("mih", help="MIH vs flat scan, queries per second, identical results")
    p.add_argument("--codes", type=int, default=10_000_000)
    p.add_argument("--centres", type=int, default=10_000)
    p.add_argument("--flips", type=int, default=4)
    p.add_argument("--real", help="replicate the codes of this (real) index instead")
    p.add_argument("--index", help="instead: Index.search_arrays on this on-disk index")
    p.add_argument(
        "--shots", type=int, default=0, help="with --real: first this many shot codes from them"
    )
    p.add_argument("--shot-flips", type=int, default=6, help="bits flipped to make a shot")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--flat-queries", type=int, default=64, help="queries timed on the flat scan")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mih-bits", type=int, help="substring length [by the number of codes]")
    p.add_argument("--seconds", type=float, default=5.0, help="at least this long per side")
    p = sub.add_parser("cost", help="the engine's MIH/flat choice vs FAISS, uniform/clustered")
    p.add_argument("--codes", type=int, default=1_000_000)
    p.add_argument("--per-video", type=int, default=1000, help="rows per input: the layout")
    p.add_argument("--centres", type=int, default=10_000)
    p.add_argument("--flips", type=int, default=4)
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0, help="at least this long per kind")
    p.add_argument("--scratch", default=None, help="where the segment files are written")
    p = sub.add_parser("write-cost", help="vidhash index with and without the search file")
    p.add_argument("videos")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scratch", default=None, help="where the indexes are written")
    args = parser.parse_args()
    commands = {"build": build, "cli": cli, "mih": mih_bench, "rerank": rerank_bench,
                "cost": cost_bench, "write-cost": write_cost}  # fmt: skip
    commands[args.command](args)


if __name__ == "__main__":
    main()
