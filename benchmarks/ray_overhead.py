"""Ray's overhead on one machine: `--engine ray` wall time over the local engine's.

Both engines index the same folder (default: ../shared/data/videos) into fresh temp
indexes, with the same model and options, in one run; the local engine runs first and
last so drift on a noisy machine shows. Ray's start-up (`ray.init` of a local instance) is
timed separately from the indexing itself.

    python benchmarks/ray_overhead.py [VIDEOS] [--model default] [--cpus 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="?", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--model", default="default")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    import ray

    from vidhash.ingest import IngestOptions, build_index
    from vidhash.ingest.ray import RayDistributor

    options = IngestOptions(workers=2, batch_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        local = build_index(args.videos, tmp / "local1", args.model, options, progress=False)
        t_local1 = time.perf_counter() - t0

        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray_engine = RayDistributor(model=args.model, progress=False)
        distributed = build_index(
            args.videos, tmp / "ray", args.model, options, distributor=ray_engine, progress=False
        )
        t_ray = time.perf_counter() - t0
        ray.shutdown()

        t0 = time.perf_counter()
        build_index(args.videos, tmp / "local2", args.model, options, progress=False)
        t_local2 = time.perf_counter() - t0

    t_local = (t_local1 + t_local2) / 2
    print(f"inputs: {args.videos}; keyframes local {local.keyframes}, ray {distributed.keyframes}")
    print(f"local engine     : {t_local1:6.1f} s, {t_local2:6.1f} s (mean {t_local:.1f} s)")
    print(f"ray.init (local) : {t_init:6.1f} s")
    print(f"ray engine       : {t_ray:6.1f} s")
    print(f"ray / local            = {t_ray / t_local:.2f}")
    print(f"(ray + init) / local   = {(t_ray + t_init) / t_local:.2f}")


if __name__ == "__main__":
    main()
