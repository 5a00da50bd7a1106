"""Does the local engine overlap decoding and inference? Each stage alone vs pipelined.

On ../shared/data/videos (or a folder given), measured in one run:
  decode stage alone  = discover + sample + crop/resize + JPEG encode, no model;
  model stage alone   = encode the same preprocessed frames in batches, no decoding;
  pipelined           = `build_index` wall time (threads, bounded queue) into a temp index.
Target: pipelined <= 1.2 x the slower stage alone.

    python benchmarks/index.py [VIDEOS] [--model default] [--workers 2] [--batch-size 32]
                               [--torch-threads N]

On a CPU-only machine both stages compete for the same cores, so the wall time cannot
drop below (decode CPU + model CPU) / cores; the script prints that floor too. With
``--torch-threads 1 --workers 1`` on 2 cores each stage has a core of its own, which is
the situation the overlap exists for (a GPU model beside CPU decoding).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vidhash.fsutil import content_hash
from vidhash.ingest import IngestOptions, build_index
from vidhash.ingest.frames import Frame, item_events
from vidhash.ingest.plan import WorkItem
from vidhash.models import load_model
from vidhash.video.discover import discover

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def decode_stage(root: Path, options: IngestOptions) -> tuple[list[np.ndarray], float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    found = discover(root)
    frames: list[np.ndarray] = []
    for path, kind in [
        *((p, "video") for p in found.videos),
        *((p, "image") for p in found.images),
    ]:
        stat = path.stat()
        item = WorkItem(str(path), kind, content_hash(path), stat.st_size, stat.st_mtime_ns)
        for event in item_events(item, options, pixels=True):  # JPEGs encoded as in a run
            if isinstance(event, Frame):
                frames.append(event.image)
    return frames, time.perf_counter() - started, time.process_time() - cpu


def model_stage(model, frames: list[np.ndarray], batch_size: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(frames), batch_size):
        model.encode(np.stack(frames[i : i + batch_size]))
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="?", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--model", default="default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads (1 gives the model its own core, as a GPU would)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    options = IngestOptions(workers=args.workers, batch_size=args.batch_size)
    model = load_model(args.model)
    model.encode(np.zeros((2, 224, 224, 3), np.uint8))  # warm-up outside the timings

    frames, t_decode, c_decode = decode_stage(args.videos, options)
    t_model, c_model = model_stage(model, frames, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        summary = build_index(args.videos, Path(tmp) / "index", model, options, progress=False)
        t_pipe, c_pipe = time.perf_counter() - started, time.process_time() - cpu

    slower = max(t_decode, t_model)
    cores = len(os.sched_getaffinity(0))
    cpu_floor = (c_decode + c_model) / cores
    print(f"inputs: {args.videos}  keyframes: {len(frames)} (indexed {summary.keyframes})")
    print(f"{'':19}   wall s   CPU s   kf/s")
    print(f"decode stage alone : {t_decode:7.2f} {c_decode:7.2f} {len(frames) / t_decode:6.1f}")
    print(f"model stage alone  : {t_model:7.2f} {c_model:7.2f} {len(frames) / t_model:6.1f}")
    print(f"sum of stages      : {t_decode + t_model:7.2f} {c_decode + c_model:7.2f}")
    print(f"pipelined          : {t_pipe:7.2f} {c_pipe:7.2f} {summary.keyframes / t_pipe:6.1f}")
    print(f"pipelined / slower stage = {t_pipe / slower:.2f}  (target <= 1.20)")
    print(f"pipelined / sum of stages = {t_pipe / (t_decode + t_model):.2f}")
    print(
        f"CPU-bound floor on {cores} cores = (decode CPU + model CPU) / cores = "
        f"{cpu_floor:.2f} s; pipelined / floor = {t_pipe / cpu_floor:.2f}"
    )


if __name__ == "__main__":
    main()
