"""PyAV backend (the default): libavformat/libavcodec in-process, with true pts.

Why PyAV: it exposes what fast sampling needs and the CLI does not: seeking the demuxer to
a keyframe, ``skip_frame="NONKEY"`` (the decoder drops non-key frames without decoding
them), the container index (keyframe positions), and per-frame display-matrix rotation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction

import av
import av.error

from vidhash.errors import DecodeError
from vidhash.video.stream import (
    DecodedFrame,
    VideoInfo,
    VideoStream,
    looks_constant_rate,
    lost_frames,
    upright,
)


def _one_line(exc: BaseException) -> str:
    """FFmpeg's own words, without PyAV's "[Errno N] ...: 'path'" wrapping around them."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PyAVStream(VideoStream):
    """A video opened with PyAV."""

    name = "pyav"

    def __init__(self, path: str | os.PathLike, *, threads: str = "AUTO") -> None:
        super().__init__(path)
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise DecodeError(f"not a readable video: {_one_line(exc)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise DecodeError("no video stream in the file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = threads
        self._from_start = True  # no seek yet: frames counted from 0 are true indices
        self._keyframes: list[float] | None = None
        self.info = self._probe()

    # -- probe --------------------------------------------------------------------------
    def _probe(self) -> VideoInfo:
        stream, container = self._stream, self._container
        tb = stream.time_base or Fraction(1, 1)
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        duration: float | None = None
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / 1_000_000
        rate = stream.average_rate or stream.guessed_rate
        frame_rate = float(rate) if rate else None
        declared = stream.frames or None
        guessed = stream.guessed_rate
        cfr = looks_constant_rate(
            frame_rate, float(guessed) if guessed else None, declared, duration
        )
        rotation = self._stream_rotation()
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            width, height = height, width
        problem = lost_frames(
            container.format.name, len(stream.index_entries), declared, "container index lists"
        )
        return VideoInfo(
            path=str(self.path),
            backend=self.name,
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            duration=duration,
            frame_rate=frame_rate,
            frame_count=declared,
            start_time=start,
            problem=problem,
            extra={"cfr": cfr, "time_base": str(tb)},
        )

    def _stream_rotation(self) -> int:
        """Display-matrix rotation: read from the first decoded frame's side data."""
        try:
            frame = next(self._container.decode(self._stream))
            rotation = int(frame.rotation or 0)
        except (StopIteration, av.error.FFmpegError, ValueError):
            rotation = 0
        finally:
            self._rewind()
        return round(rotation / 90) * 90 % 360

    def _rewind(self) -> None:
        # Unseekable input: the probe decode cost us the first frame; nothing better to do.
        with contextlib.suppress(av.error.FFmpegError):
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._from_start = True

    # -- VideoStream --------------------------------------------------------------------
    def seek(self, t: float) -> None:
        if t <= self.info.start_time:
            self._rewind()
            return
        tb = self._stream.time_base
        try:
            self._container.seek(int(t / tb), stream=self._stream, backward=True)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"seek to {t:.3f} s failed: {_one_line(exc)}") from exc
        self._from_start = False

    def frames(self, *, keyframes_only: bool = False) -> Iterator[DecodedFrame]:
        codec = self._stream.codec_context
        codec.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"
        counting = self._from_start and not keyframes_only
        index = 0
        decoded = self._container.decode(self._stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                raise DecodeError(f"decoding stopped: {_one_line(exc)}") from exc
            if frame.pts is None:
                continue  # no timestamp: cannot be placed in time
            pts_time = float(frame.pts * frame.time_base)
            rotation = int(frame.rotation or 0)
            yield DecodedFrame(
                pts_time=pts_time,
                key=bool(frame.key_frame),
                frame_index=index if counting else self.derived_index(pts_time),
                rotation=rotation,
                _to_rgb=_converter(frame, rotation),
            )
            index += 1

    def read_keyframe(self, t: float) -> DecodedFrame | None:
        """Seek, decode the first keyframe packet alone, then drain the decoder.

        Why not ``frames(keyframes_only=True)``: a decoder with a reorder delay (H.264 with
        B-frames) holds its output back until later frames arrive, and skipped frames do
        not count, so it would read up to two more GOPs before returning the keyframe.
        Draining after one packet gets it out at the cost of one decoded frame.
        """
        self.seek(t)
        codec = self._stream.codec_context
        codec.skip_frame = "DEFAULT"
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or not packet.is_keyframe:
                    continue
                frames = list(codec.decode(packet)) + list(codec.decode(None))
                frames = [f for f in frames if f.pts is not None]
                if not frames:
                    continue
                frame = min(frames, key=lambda f: f.pts)
                rotation = int(frame.rotation or 0)
                pts_time = float(frame.pts * self._stream.time_base)
                return DecodedFrame(
                    pts_time=pts_time,
                    key=True,
                    frame_index=self.derived_index(pts_time),
                    rotation=rotation,
                    _to_rgb=_converter(frame, rotation),
                )
        except av.error.FFmpegError as exc:
            raise DecodeError(f"decoding stopped: {_one_line(exc)}") from exc
        finally:
            self._from_start = False
        return None

    def keyframe_times(self) -> list[float] | None:
        """Read every packet once (demux only: ~1% of a decode) and keep keyframe pts.

        Why not the container index: MP4 and AVI index entries carry dts, not pts, and
        Matroska's cues may be missing or sparse.
        """
        if self._keyframes is None:
            tb = self._stream.time_base
            keys: list[float] = []
            self._rewind()
            try:
                for packet in self._container.demux(self._stream):
                    if packet.is_keyframe and packet.pts is not None:
                        keys.append(float(packet.pts * tb))
            except av.error.FFmpegError:
                pass  # a broken tail: the keyframes before it are still right
            self._rewind()
            self._keyframes = sorted(keys)
        return self._keyframes or None

    def scan_duration(self) -> float | None:
        """Read packets (no decoding) to find the last pts: cheap even for long files."""
        last = None
        tb = self._stream.time_base
        try:
            self._rewind()
            for packet in self._container.demux(self._stream):
                if packet.pts is not None:
                    end = packet.pts + (packet.duration or 0)
                    last = end if last is None else max(last, end)
        except av.error.FFmpegError:
            pass  # a broken tail: the duration is what was readable
        self._rewind()
        return None if last is None else float(last * tb) - self.info.start_time

    def close(self) -> None:
        self._container.close()


def _converter(frame: av.VideoFrame, rotation: int):
    def to_rgb():
        return upright(frame.to_ndarray(format="rgb24"), rotation)

    return to_rgb
