"""Benchmark: the ``vidhash extract`` command against a full decode of the same file.

Command (issue 19, item 3):

    python benchmarks/extract.py --repeats 5 --clip-dir /tmp/vidhash-clips

Inputs: generated 120 s 1280x720 H.264 clips (30 fps, GOP 2 s = 60 frames, x264
``veryfast`` with its default B-frames) made from scikit-image photos panning across the
frame, in two flavours: ``camera`` (sensor-like grain sigma 6 at 4 Mbit/s, a typical
720p30 camera bitrate) and ``clean`` (CRF 23: ~0.45 Mbit/s, P-frames ~1 KB, far cheaper to
decode than camera footage); ``--shared DIR`` adds a folder of real videos.

Protocol: each round runs every contender once, in turn (so load on a shared machine hits
them alike); the table gives the best and the median wall time of ``--repeats`` rounds,
and the CPU time of that process (children included):

  full decode      PyAV decodes every frame of the file with 2 codec threads
                   (thread_type AUTO, thread_count 2), no colour conversion
  vidhash extract  ``vidhash extract CLIP --out NEW --every 2 --mode fast --no-progress
                   --json`` as a child process: interpreter and CLI start-up, content hash,
                   sampling (the file cut into parts over the decode threads), crops,
                   JPEGs, Parquet parts; what a user waits for
  --workers 1      the same command with one decode thread (the file is not cut)
  start-up         the same command on an empty folder: what any run pays before decoding

Target (issue 19): full decode / ``vidhash extract`` >= 5x in wall time, fast mode,
1 frame / 2 s, on the 120 s 720p file.

Run:  python benchmarks/extract.py [--seconds 120] [--repeats 5] [--clips camera clean]
      [--every 2] [--mode fast] [--clip-dir DIR] [--shared DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

from vidhash.fsutil import content_hash

WIDTH, HEIGHT, FPS, GOP_SECONDS = 1280, 720, 30, 2
# name -> (grain sigma, target Mbit/s or None for CRF 23)
CLIPS: dict[str, tuple[float, float | None]] = {"clean": (0.0, None), "camera": (6.0, 4.0)}


def make_clip(path: Path, seconds: int, grain: float = 0.0, mbps: float | None = None) -> Path:
    """A real H.264 clip: photos panning (so every frame differs), fixed 2 s GOP.

    ``grain``: standard deviation (8-bit levels) of sensor-like noise added to each frame.
    Without it, a pan over a still photo is almost free to predict, so P-frames are far
    cheaper to decode (and the bitrate far lower) than in camera footage. ``mbps``: target
    bitrate (x264 ABR) instead of the default CRF 23.
    """
    import cv2
    import skimage.data

    photos = [getattr(skimage.data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket")]
    strips = [
        cv2.resize(p[..., :3], (WIDTH * 2, HEIGHT), interpolation=cv2.INTER_LINEAR) for p in photos
    ]
    gop = FPS * GOP_SECONDS
    rng = np.random.default_rng(0)
    noise = [
        np.clip(rng.normal(0, grain, (HEIGHT, WIDTH, 3)), -127, 127).astype(np.int16)
        for _ in range(16 if grain > 0 else 0)
    ]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.codec_context.gop_size = gop
        if mbps:
            stream.codec_context.bit_rate = int(mbps * 1e6)
        stream.codec_context.options = {
            "preset": "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        for i in range(seconds * FPS):
            strip = strips[(i // (FPS * 5)) % len(strips)]  # a new photo every 5 s
            offset = (i * 8) % WIDTH  # pan 8 px per frame
            image = np.ascontiguousarray(strip[:, offset : offset + WIDTH])
            if noise:
                image = np.clip(image + noise[i % len(noise)], 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def full_decode(paths: list[Path], threads: int = 2) -> int:
    """Decode every frame of every file with ``threads`` codec threads; the frame count."""
    frames = 0
    for path in paths:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = threads
                for _ in container.decode(stream):
                    frames += 1
        except av.error.FFmpegError:
            continue
    return frames


def vidhash_command() -> list[str]:
    """The installed ``vidhash`` script of this interpreter (as a user runs it; not a
    version manager's shim in front of it), else ``python -m vidhash``."""
    script = Path(sys.executable).with_name("vidhash")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vidhash"]


@dataclass
class Timing:
    """Wall and CPU seconds of every round of one contender."""

    label: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    note: str = ""

    def timed(self, fn: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = fn()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(_cpu_seconds() - cpu)
        return result

    def row(self, baseline: Timing | None) -> str:
        best, median = min(self.walls), statistics.median(self.walls)
        cpu = statistics.median(self.cpus)
        line = f"  {self.label:<34} {best:7.3f} {median:7.3f} {cpu:7.3f}"
        if baseline is not None and baseline is not self:
            base_best, base_median = min(baseline.walls), statistics.median(baseline.walls)
            line += f"   {base_best / best:5.2f}x {base_median / median:5.2f}x"
        return line + (f"  {self.note}" if self.note else "")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the CLI runs as a child)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cli(target: Path, out: Path, every: float, mode: str, *extra: str) -> dict:
    """``vidhash extract`` in a child process; its --json summary."""
    argv = [*vidhash_command(), "extract", str(target), "--out", str(out), "--every", str(every)]
    argv += ["--mode", mode, "--no-progress", "--json", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def measure(label: str, target: Path, paths: list[Path], args: argparse.Namespace) -> None:
    """One table: the full decode and the CLI variants, rounds interleaved."""
    work = Path(tempfile.mkdtemp(prefix="vidhash-bench-"))
    empty = work / "empty"
    empty.mkdir()
    decode = Timing("full decode, 2 codec threads")
    fast = Timing(f"vidhash extract --mode {args.mode}")
    serial = Timing("  ... --workers 1 (not cut)")
    startup = Timing("  ... on an empty folder (start-up)")
    every, mode = args.every, args.mode
    try:
        for r in range(args.repeats):
            frames = decode.timed(partial(full_decode, paths))
            summary = fast.timed(partial(cli, target, work / f"a{r}", every, mode))
            serial.timed(partial(cli, target, work / f"b{r}", every, mode, "--workers", "1"))
            startup.timed(partial(cli, empty, work / f"c{r}", every, mode))
        fast.note = (
            f"{summary['keyframes']} keyframes [ok {summary['ok']}, partial "
            f"{summary['partial']}, failed {summary['failed']}]"
        )
        print(f"\n{label}: {len(paths)} file(s), {frames} frames, --every {args.every:g}")
        heads = f"{'best s':>7} {'median':>7} {'CPU s':>7}"
        print(f"  {'':<34} {heads}   full decode / this: best, median")
        for timing in (decode, fast, serial, startup):
            print(timing.row(decode if timing is not startup else None))
        ratio = min(decode.walls) / min(fast.walls)
        print(f"  speed-up, wall (best of {args.repeats}): {ratio:.2f}x (target >= 5x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_or_reuse(name: str, args: argparse.Namespace, tmp: Path) -> Path:
    """The generated clip (kept in --clip-dir between runs: same seed, same bytes)."""
    grain, target_mbps = CLIPS[name]
    folder = args.clip_dir or tmp
    clip = folder / f"{name}-{args.seconds}s-720p.mp4"
    if not clip.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".mp4", delete=False) as tmp_clip:
            pass
        make_clip(Path(tmp_clip.name), args.seconds, grain, target_mbps)
        Path(tmp_clip.name).replace(clip)
        print(f"generated {clip} in {time.perf_counter() - started:.1f} s")
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--mode", choices=["fast", "exact"], default="fast")
    parser.add_argument(
        "--clips",
        nargs="*",
        default=["camera", "clean"],
        choices=sorted(CLIPS),
        help="camera: grain at 4 Mbit/s; clean: CRF 23 pan over photos",
    )
    parser.add_argument("--clip-dir", type=Path, help="keep/reuse the generated clips here")
    parser.add_argument("--shared", type=Path, help="also a folder of real videos")
    args = parser.parse_args()

    print(f"vidhash command: {' '.join(vidhash_command())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="vidhash-clip-") as tmp:
        for name in args.clips:
            clip = make_or_reuse(name, args, Path(tmp))
            mbps = clip.stat().st_size * 8 / args.seconds / 1e6
            label = f"{name} clip: {args.seconds} s {WIDTH}x{HEIGHT} H.264 GOP {GOP_SECONDS} s"
            label += f", {mbps:.2f} Mbit/s (sha256 {content_hash(clip)[:16]})"
            measure(label, clip, [clip], args)
    if args.shared is not None:
        from vidhash.video.discover import discover

        videos = discover(args.shared).videos
        measure(f"shared videos ({args.shared})", args.shared, videos, args)


if __name__ == "__main__":
    main()
