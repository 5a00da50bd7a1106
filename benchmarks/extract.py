"""Benchmark: ``vidhash extract`` fast and exact mode against a full decode, in one run.

Inputs: generated 120 s 1280x720 H.264 clips (30 fps, GOP 2 s = 60 frames, x264
``veryfast`` with its default B-frames) made from scikit-image photos panning across the
frame, in two flavours: ``clean`` (CRF 23: ~0.45 Mbit/s, P-frames ~1 KB, far cheaper to
decode than camera footage) and ``camera`` (sensor-like grain sigma 6 at 4 Mbit/s, a
typical 720p30 camera bitrate); plus ../shared/data/videos when present.

Protocol (each timing is the best of ``--repeats`` runs, wall clock, same process):
  full decode   PyAV decodes every frame of the file, no colour conversion; once with
                PyAV's default threading and once with frame threads (the fastest full
                pass, so the second ratio is the conservative one)
  extract fast  ``vidhash.ingest.extract`` end to end at 1 frame / 2 s: content hash,
                sampling, crop+resize, JPEG writes, Parquet parts (fresh output folder)
  extract exact the same with ``mode="exact"``
Targets (issue 2): fast >= 15x faster than the full decode, exact >= 2x.

Run:  python benchmarks/extract.py [--seconds 120] [--repeats 3] [--clips clean camera]
      [--clip-dir DIR] [--shared ../shared/data/videos]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidhash.fsutil import content_hash
from vidhash.ingest import IngestOptions, extract

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


def full_decode(paths: list[Path], threads: str | None = None) -> int:
    """Decode every frame of every file; returns the frame count.

    ``threads=None`` keeps PyAV's default (slice threads: one core for most H.264);
    ``"AUTO"`` adds frame threads, the fastest full pass PyAV can make.
    """
    frames = 0
    for path in paths:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                if threads:
                    stream.thread_type = threads
                for _ in container.decode(stream):
                    frames += 1
        except av.error.FFmpegError:
            continue
    return frames


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds of this process, last result) over repeats.

    CPU time (all threads) is reported too because the build machines are shared: under
    contention wall time swings 2-3x between runs while CPU time stays put.
    """
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def measure(
    label: str, inputs: Path | list[Path], paths: list[Path], repeats: int, every: float
) -> None:
    work = Path(tempfile.mkdtemp(prefix="vidhash-bench-"))
    try:
        default_s, default_cpu, frames = best_of(repeats, lambda: full_decode(paths))
        auto_s, auto_cpu, _ = best_of(repeats, lambda: full_decode(paths, "AUTO"))
        print(f"\n{label}: {len(paths)} file(s), {frames} frames; wall s / CPU s")
        print(f"  full decode, PyAV defaults       {default_s:7.3f} / {default_cpu:7.3f}")
        print(f"  full decode, PyAV frame threads  {auto_s:7.3f} / {auto_cpu:7.3f}")
        for mode in ("fast", "exact"):
            counter = iter(range(10**6))

            def run(mode: str = mode, counter=counter) -> object:
                out = work / f"{mode}-{next(counter)}"  # a fresh folder: no resume shortcut
                return extract(inputs, out, IngestOptions(every=every, mode=mode), progress=False)

            seconds, cpu, summary = best_of(repeats, run)
            print(
                f"  extract --mode {mode:<5} --every {every:<4g} {seconds:7.3f} / {cpu:7.3f}  "
                f"{summary.keyframes:4d} keyframes [ok {summary.ok}, partial {summary.partial}, "
                f"failed {summary.failed}]\n"
                f"      speed-up vs defaults: wall {default_s / seconds:5.1f}x  CPU "
                f"{default_cpu / cpu:5.1f}x;  vs frame threads: wall {auto_s / seconds:5.1f}x  "
                f"CPU {auto_cpu / cpu:5.1f}x"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument(
        "--clips",
        nargs="*",
        default=["clean", "camera"],
        choices=sorted(CLIPS),
        help="clean: CRF 23 pan over photos; camera: + sensor-like grain at 4 Mbit/s",
    )
    parser.add_argument("--clip-dir", type=Path, help="keep/reuse the generated clips here")
    default_shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
    parser.add_argument("--shared", type=Path, default=default_shared)
    args = parser.parse_args()

    for name in args.clips:
        grain, target_mbps = CLIPS[name]
        with tempfile.TemporaryDirectory(prefix="vidhash-clip-") as tmp:
            started = time.perf_counter()
            folder = args.clip_dir or Path(tmp)
            clip = folder / f"{name}-{args.seconds}s-720p.mp4"
            if not clip.exists():  # --clip-dir keeps clips between runs (same seed, same bytes)
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(
                    dir=folder, suffix=".mp4", delete=False
                ) as tmp_clip:
                    pass
                make_clip(Path(tmp_clip.name), args.seconds, grain, target_mbps)
                Path(tmp_clip.name).replace(clip)
            took = time.perf_counter() - started
            mbps = clip.stat().st_size * 8 / args.seconds / 1e6
            label = f"'{name}' 720p clip ({mbps:.2f} Mbit/s)"
            print(
                f"\ngenerated {name} clip: {args.seconds} s {WIDTH}x{HEIGHT} H.264 {FPS} fps "
                f"GOP {GOP_SECONDS} s, grain {grain:g}, {clip.stat().st_size / 1e6:.1f} MB "
                f"({mbps:.2f} Mbit/s) in {took:.1f} s"
            )
            print(f"  (sha256 {content_hash(clip)[:16]})")
            measure(label, clip, [clip], args.repeats, args.every)
            measure(label + ", samples off the keyframes", clip, [clip], args.repeats, 1.5)
    if args.shared.is_dir():
        from vidhash.video.discover import discover

        videos = discover(args.shared).videos
        measure(f"shared videos ({args.shared})", args.shared, videos, args.repeats, args.every)
    else:
        print(f"\n(no {args.shared}: shared-data figures skipped)")


if __name__ == "__main__":
    main()
