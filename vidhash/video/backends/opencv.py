"""OpenCV backend (optional): ``cv2.VideoCapture`` with its FFmpeg reader.

Why offer it: many users already trust OpenCV's reader. Its limits are worth knowing:
it has no keyframe-only decoding and seeks *to a time* (decoding from the previous
keyframe internally), so ``fast`` mode is not faster with it; the header duration is
``frame count / fps``; pts come from ``CAP_PROP_POS_MSEC`` (the last grabbed frame).
OpenCV applies the display matrix itself (``CAP_PROP_ORIENTATION_AUTO``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2

from vidhash.errors import DecodeError
from vidhash.video.stream import DecodedFrame, VideoInfo, VideoStream, looks_constant_rate


class OpenCVStream(VideoStream):
    """A video read with ``cv2.VideoCapture``."""

    name = "opencv"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        if not self.path.is_file():
            raise DecodeError("not a readable file")
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise DecodeError("not a readable video (OpenCV could not open it)")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DecodeError("no decodable frames")
        self._start_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        count = count if count > 0 else None  # unknown is reported as 0 or INT64_MIN
        duration = count / fps if count and fps else None
        # OpenCV reports the angle clockwise; FFmpeg (and vidhash) counter-clockwise.
        rotation = -int(self._cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)
        self.info = VideoInfo(
            path=str(self.path),
            backend=self.name,
            container="",
            codec=_fourcc(self._cap.get(cv2.CAP_PROP_FOURCC)),
            width=first.shape[1],
            height=first.shape[0],
            rotation=round(rotation / 90) * 90 % 360,
            duration=duration,
            frame_rate=fps,
            frame_count=count,
            start_time=self._start_ms / 1000,
            extra={"cfr": looks_constant_rate(fps, fps, count, duration)},
        )
        self._rewind()

    def _rewind(self) -> None:
        # Reopen rather than seek to frame 0: seeking fails on files without an index
        # (a WebM with no cues), reopening never does.
        self._cap.release()
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        self._from_start = True

    def seek(self, t: float) -> None:
        if t <= self.info.start_time:
            self._rewind()
            return
        # OpenCV lands on the frame *nearest* the time; half a frame earlier makes that the
        # frame at or before t, which sampling's "on screen at t" rule expects.
        half_frame = 0.5 / self.info.frame_rate if self.info.frame_rate else 0.0
        self._cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, t - half_frame) * 1000)
        self._from_start = False

    def frames(self, *, keyframes_only: bool = False) -> Iterator[DecodedFrame]:
        index = 0
        counting = self._from_start
        while True:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                return
            pts_time = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield DecodedFrame(
                pts_time=pts_time,
                key=False,
                frame_index=index if counting else self.derived_index(pts_time),
                rotation=self.info.rotation,
                _to_rgb=lambda rgb=rgb: rgb,
            )
            index += 1

    def close(self) -> None:
        self._cap.release()


def _fourcc(value: float) -> str:
    code = int(value)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
