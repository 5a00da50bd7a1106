"""Does the local engine overlap decoding and inference? Each stage alone vs pipelined.

On ../shared/data/videos (or a folder given), measured in one run:
  decode stage alone  = discover + sample + crop/resize + JPEG encode, no model;
  model stage alone   = encode the same preprocessed frames in batches, no decoding;
  pipelined           = `build_index` wall time (threads, bounded queue) into a temp index.
Target: pipelined <= 1.2 x the slower stage alone.

    python benchmarks/index.py [VIDEOS] [--model default] [--workers 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidhash.fsutil import content_hash
from vidhash.models import load_model
from vidhash.pipeline import IndexOptions, WorkItem, build_index, iter_item_frames
from vidhash.video.discover import discover

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def decode_stage(root: Path, options: IndexOptions) -> tuple[list[np.ndarray], float]:
    started = time.perf_counter()
    found = discover(root)
    frames: list[np.ndarray] = []
    for path, kind in [
        *((p, "video") for p in found.videos),
        *((p, "image") for p in found.images),
    ]:
        stat = path.stat()
        item = WorkItem(path, kind, content_hash(path), stat.st_size, stat.st_mtime)
        try:
            for _row, image in iter_item_frames(item, options):
                cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
                frames.append(image)
        except Exception:  # damaged files end early, as in the real run
            pass
    return frames, time.perf_counter() - started


def model_stage(model, frames: list[np.ndarray], batch_size: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(frames), batch_size):
        model.encode(np.stack(frames[i : i + batch_size]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="?", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--model", default="default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    options = IndexOptions(workers=args.workers, batch_size=args.batch_size)
    model = load_model(args.model)
    model.encode(np.zeros((2, 224, 224, 3), np.uint8))  # warm-up outside the timings

    frames, t_decode = decode_stage(args.videos, options)
    t_model = model_stage(model, frames, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = build_index(
            args.videos, Path(tmp) / "index", model, options=options, progress=False
        )
        t_pipe = time.perf_counter() - started

    slower = max(t_decode, t_model)
    print(f"inputs: {args.videos}  keyframes: {len(frames)} (indexed {summary.keyframes})")
    print(f"decode stage alone : {t_decode:7.2f} s  ({len(frames) / t_decode:6.1f} kf/s)")
    print(f"model stage alone  : {t_model:7.2f} s  ({len(frames) / t_model:6.1f} kf/s)")
    print(f"sum of stages      : {t_decode + t_model:7.2f} s")
    print(f"pipelined          : {t_pipe:7.2f} s  ({summary.keyframes / t_pipe:6.1f} kf/s)")
    print(f"pipelined / slower stage = {t_pipe / slower:.2f}  (target <= 1.20)")
    print(f"pipelined / sum of stages = {t_pipe / (t_decode + t_model):.2f}")


if __name__ == "__main__":
    main()
