"""ffmpeg command-line backend (through ffmpeg-python): a second, independent decoder.

Why keep it: it is the reference people trust, it reads whatever the installed FFmpeg
reads, and agreeing with PyAV on timestamps is a real check of both. Each ``frames()``
call runs one ``ffmpeg`` process that writes raw RGB to a pipe; the ``showinfo`` filter
reports every frame's true pts (``-copyts`` keeps the file's clock) on stderr, which a
thread reads alongside. ``ffmpeg`` applies the display matrix itself (autorotate), so
frames come out upright. Seeking is input seeking (``-ss T -noaccurate_seek``): the first
frame is the keyframe at or before ``T``, as with PyAV.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from fractions import Fraction

import ffmpeg
import numpy as np

from vidhash.errors import DecodeError
from vidhash.video.stream import (
    FULL_INDEX_FORMATS,
    DecodedFrame,
    VideoInfo,
    VideoStream,
    looks_constant_rate,
    lost_frames,
)

_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.e+-]+).*?iskey:(\d)")
_END = object()


def _rate(text: str | None) -> float | None:
    try:
        value = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value else None


class FFmpegStream(VideoStream):
    """A video read by running the ``ffmpeg`` and ``ffprobe`` programs."""

    name = "ffmpeg"
    programs = ("ffmpeg", "ffprobe")

    @classmethod
    def missing_requirement(cls) -> str | None:
        absent = [p for p in cls.programs if shutil.which(p) is None]
        if not absent:
            return None
        return (
            f"needs the {' and '.join(absent)} program{'s' if len(absent) > 1 else ''}, "
            "not found on PATH: install FFmpeg (apt-get install ffmpeg) "
            "or use the pyav backend (--backend pyav)"
        )

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        if not self.path.is_file():
            raise DecodeError("not a readable file")
        try:
            probed = ffmpeg.probe(str(self.path), select_streams="v:0")
        except ffmpeg.Error as exc:
            lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else "ffprobe failed"
            raise DecodeError(f"not a readable video: {reason}") from None
        streams = probed.get("streams") or []
        if not streams:
            raise DecodeError("no video stream in the file")
        self._seek_to: float | None = None
        self._keyframes: list[float] | None = None
        self._packets = 0
        self.info = self._info(streams[0], probed.get("format", {}))

    def _info(self, stream: dict, fmt: dict) -> VideoInfo:
        rotation = 0
        for side in stream.get("side_data_list") or []:
            if "rotation" in side:
                rotation = round(float(side["rotation"]) / 90) * 90 % 360
        width, height = int(stream["width"]), int(stream["height"])
        if rotation % 180:
            width, height = height, width
        duration = stream.get("duration") or fmt.get("duration")
        avg = _rate(stream.get("avg_frame_rate"))
        real = _rate(stream.get("r_frame_rate"))
        count = int(stream["nb_frames"]) if str(stream.get("nb_frames", "")).isdigit() else None
        seconds = float(duration) if duration else None
        cfr = looks_constant_rate(avg, real, count, seconds)
        problem = None
        container = fmt.get("format_name", "")
        if count and container in FULL_INDEX_FORMATS:
            self.keyframe_times()  # also counts the packets
            problem = lost_frames(container, self._packets, count, "the file holds")
        return VideoInfo(
            path=str(self.path),
            backend=self.name,
            container=container,
            codec=stream.get("codec_name", ""),
            width=width,
            height=height,
            rotation=rotation,
            duration=float(duration) if duration else None,
            frame_rate=avg or real,
            frame_count=count or None,
            start_time=float(stream.get("start_time") or 0.0),
            problem=problem,
            extra={"cfr": cfr},
        )

    def keyframe_times(self) -> list[float] | None:
        """Keyframe pts from ``ffprobe -show_packets`` (demux only), read once."""
        if self._keyframes is None:
            try:
                probed = ffmpeg.probe(
                    str(self.path),
                    select_streams="v:0",
                    show_entries="packet=pts_time,flags",
                    show_packets=None,
                )
                packets = [p for p in probed.get("packets", []) if int(p.get("size", 0) or 0) > 0]
                keys = [
                    float(p["pts_time"])
                    for p in packets
                    if "K" in p.get("flags", "") and p.get("pts_time") not in (None, "N/A")
                ]
                self._packets = len(packets)
            except ffmpeg.Error:
                keys = []
            self._keyframes = sorted(keys)
        return self._keyframes or None

    def seek(self, t: float) -> None:
        self._seek_to = t if t > self.info.start_time else None

    def _command(self, keyframes_only: bool) -> list[str]:
        input_args: dict[str, object] = {"copyts": None}
        if keyframes_only:
            input_args["skip_frame"] = "nokey"
        if self._seek_to is not None:
            input_args.update(ss=f"{self._seek_to:.6f}", noaccurate_seek=None)
        graph = ffmpeg.input(str(self.path), **input_args).output(
            "pipe:",
            map="0:v:0",
            vf="showinfo",
            format="rawvideo",
            pix_fmt="rgb24",
            fps_mode="passthrough",
        )
        return graph.global_args(
            "-nostdin", "-nostats", "-hide_banner", "-loglevel", "level+info"
        ).compile()

    def frames(self, *, keyframes_only: bool = False) -> Iterator[DecodedFrame]:
        width, height = self.info.width, self.info.height
        frame_bytes = width * height * 3
        from_start = self._seek_to is None and not keyframes_only
        proc = subprocess.Popen(
            self._command(keyframes_only), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        infos: queue.Queue = queue.Queue()
        errors: list[str] = []
        reader = threading.Thread(
            target=_read_stderr, args=(proc.stderr, infos, errors), daemon=True
        )
        reader.start()
        try:
            while True:
                data = proc.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    break
                item = infos.get(timeout=60)
                if item is _END:
                    break
                index, pts_time, key = item
                pixels = np.frombuffer(data, np.uint8).reshape(height, width, 3)
                yield DecodedFrame(
                    pts_time=pts_time,
                    key=key,
                    frame_index=index if from_start else self.derived_index(pts_time),
                    rotation=self.info.rotation,
                    _to_rgb=pixels.copy,
                )
            returncode = proc.wait()
            reader.join(timeout=5)
            if returncode != 0 or errors:
                raise DecodeError(
                    f"decoding stopped: {errors[0] if errors else f'ffmpeg exit {returncode}'}"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def close(self) -> None:
        self._seek_to = None


def _read_stderr(stream, infos: queue.Queue, errors: list[str]) -> None:
    """Route showinfo lines (n, pts_time, iskey) to ``infos`` and error lines to ``errors``."""
    try:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            match = _SHOWINFO.search(line)
            if match and "showinfo" in line:
                infos.put((int(match.group(1)), float(match.group(3)), match.group(4) == "1"))
            elif "[error]" in line or "[fatal]" in line:
                errors.append(re.sub(r"^\[[^]]*\]\s*", "", line.split("] ", 1)[-1]).strip())
    finally:
        infos.put(_END)
        stream.close()
