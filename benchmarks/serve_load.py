"""Load on `vidhash serve`: many concurrent keyframe searches against a large index.

Claim (issue 15): 200 concurrent keyframe searches on a 100k-keyframe index finish without
an error. This script

1. writes a synthetic index of ``--keyframes`` keyframes through ``IndexStore`` (codes in
   clusters: a random centre per cluster, a few bits flipped per keyframe, so distances
   tie as in real footage; a made-up model id: keyframe searches never load a model);
2. starts the real server (`vidhash serve INDEX --port 0`) on 127.0.0.1;
3. per round, fires ``--concurrency`` keyframe searches at once (httpx async client, one
   connection each) for random keyframes, checks every answer (HTTP 200, k hits, the
   first at distance 0), and prints p50/p95/max latency as the client saw it, the wall
   time of the round, the server's own search time (``took_ms``) and the server process's
   CPU time per request (the client runs on the same machine and takes its share).

It exits 1 if any request failed. Traffic goes to 127.0.0.1 only; rounds and requests are
bounded in number and each request in time.

    python benchmarks/serve_load.py                      # 100k keyframes, 200 at once, 3 rounds
    python benchmarks/serve_load.py --keyframes 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from vidhash.fsutil import keyframe_id
from vidhash.index import IndexStore

MODEL = {"model_id": "b" * 64, "model_name": "synthetic", "model_config": {}, "code_bits": 48}


def write_index(root: Path, n: int, per_video: int, clusters: int, seed: int) -> list[str]:
    """A synthetic index of n keyframes in videos of per_video; returns the keyframe ids."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 256, (clusters, 6), dtype=np.uint8)
    ids: list[str] = []
    with IndexStore.open(root, model_meta=MODEL, create=True) as store:
        for v in range(-(-n // per_video)):
            count = min(per_video, n - v * per_video)
            content = hashlib.sha256(f"video-{v}".encode()).hexdigest()
            codes = centres[rng.integers(0, clusters, count)].copy()
            flips = rng.integers(0, 48, (count, 3))  # up to 3 bits away from the centre
            for bit in flips.T:
                codes[np.arange(count), bit // 8] ^= (1 << (7 - bit % 8)).astype(np.uint8)
            frames = [
                {"keyframe_id": keyframe_id(content, i * 2.0), "pts_time": i * 2.0, "code": c}
                for i, c in enumerate(codes)
            ]
            store.write_video(
                {"video_path": f"videos/{v:05d}.mp4", "content_hash": content, "status": "ok"},
                frames,
            )
            ids += [f["keyframe_id"] for f in frames]
    return ids


def start_server(index: Path, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "vidhash.cli", "serve", str(index), "--port", "0"]
    proc = subprocess.Popen(
        [*argv, "--log-level", "warning"], stdout=subprocess.PIPE, stderr=None, text=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        line = proc.stdout.readline() if ready else ""
        if " at http://127.0.0.1:" in line:
            return proc, line.split(" at ", 1)[1].strip().rstrip("/")
    proc.kill()
    raise SystemExit("the server did not start")


def wait_for_model_attempt(url: str, timeout: float = 300) -> None:
    """Let the server's background model load finish (here it fails: the model id is made
    up) so that its CPU time does not land in the first round."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        while time.monotonic() < deadline:
            if http.get("/api/stats").json()["model_status"] not in ("loading", "not loaded"):
                return
            time.sleep(0.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_search(http: httpx.AsyncClient, kid: str, k: int) -> tuple[float, float, str]:
    """(client latency s, server took_ms, error or '') for one keyframe search."""
    started = time.perf_counter()
    try:
        response = await http.get("/api/search", params={"keyframe": kid, "k": k})
    except httpx.HTTPError as exc:
        return time.perf_counter() - started, 0.0, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return elapsed, 0.0, f"HTTP {response.status_code}: {response.text[:200]}"
    body = response.json()
    hits = body["hits"]
    if len(hits) != k or hits[0]["distance"] != 0:
        return elapsed, body["took_ms"], f"bad answer for {kid}: {len(hits)} hits"
    return elapsed, body["took_ms"], ""


async def round_of(url: str, ids: list[str], concurrency: int, k: int, rng) -> dict:
    picks = [ids[i] for i in rng.integers(0, len(ids), concurrency)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        results = await asyncio.gather(*(one_search(http, kid, k) for kid in picks))
        wall = time.perf_counter() - started
    latencies = sorted(r[0] * 1000 for r in results)
    errors = [r[2] for r in results if r[2]]
    return {
        "wall_s": wall,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
        "max_ms": latencies[-1],
        "server_p50_ms": statistics.median(r[1] for r in results),
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyframes", type=int, default=100_000)
    parser.add_argument("--per-video", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.concurrency <= 1000:
        parser.error("--rounds must be 1..20 and --concurrency 1..1000")

    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        started = time.perf_counter()
        ids = write_index(index, args.keyframes, args.per_video, args.clusters, args.seed)
        print(f"wrote a {len(ids):,}-keyframe index in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        proc, url = start_server(index)
        print(f"server up at {url} in {time.perf_counter() - started:.1f} s")
        failed = 0
        try:
            wait_for_model_attempt(url)
            rng = np.random.default_rng(args.seed + 1)
            asyncio.run(round_of(url, ids, 10, args.k, rng))  # warm-up: connections, caches
            for n in range(1, args.rounds + 1):
                cpu_before = cpu_seconds(proc.pid)
                r = asyncio.run(round_of(url, ids, args.concurrency, args.k, rng))
                server_cpu = (cpu_seconds(proc.pid) - cpu_before) / args.concurrency
                failed += len(r["errors"])
                print(
                    f"round {n}: {args.concurrency} concurrent keyframe searches (k={args.k}) "
                    f"in {r['wall_s']:.2f} s: p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
                    f"max {r['max_ms']:.0f} ms; server: search p50 {r['server_p50_ms']:.2f} ms, "
                    f"CPU {server_cpu * 1000:.1f} ms per request; errors {len(r['errors'])}"
                )
                for error in r["errors"][:5]:
                    print(f"  error: {error}")
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failed or not alive:
        print(f"FAILED: {failed} errors; server alive: {alive}")
        return 1
    print("ok: no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
