"""Peak memory of `vidhash index` on a generated 2-hour video (target: under 1 GB RSS).

The video is encoded once with PyAV (H.264, 320x180, 10 fps, a keyframe every 2 s: 72,000
frames) into a temp folder, then `vidhash index` runs in a child process whose peak RSS
(ru_maxrss of the child) is reported. Memory must not grow with the video's length:
frames stream through a bounded queue and only each keyframe's row is kept.

    python benchmarks/memory.py [--hours 2] [--every 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_long_video(path: Path, seconds: int, fps: int = 10, size=(320, 180)) -> Path:
    width, height = size
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 255, size=(64, height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.options = {
            "preset": "ultrafast",
            "x264-params": f"keyint={2 * fps}:min-keyint={2 * fps}:scenecut=0",
        }
        for i in range(seconds * fps):
            image = palette[(i // (2 * fps)) % len(palette)]
            frame = av.VideoFrame.from_ndarray(np.roll(image, i % 50, axis=1), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        started = time.perf_counter()
        make_long_video(video, int(args.hours * 3600))
        print(
            f"generated {video.stat().st_size / 1e6:.0f} MB, {args.hours} h "
            f"in {time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "vidhash.cli",
                "index",
                str(video),
                "--out",
                str(Path(tmp) / "index"),
                "--every",
                str(args.every),
                "--model",
                args.model,
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if result.returncode != 0:
            sys.exit(result.stderr[-2000:])
        summary = json.loads(result.stdout)
    print(f"indexed {summary['keyframes']} keyframes in {wall:.0f} s")
    print(f"peak RSS of `vidhash index`: {peak_mb:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
