"""The decoder interface every backend implements, and the registry that picks one.

Shaped after PySceneDetect's ``backends``: one small ``VideoStream`` contract (probe facts,
seek, decode forward with true timestamps) so the sampling logic in
:mod:`vidhash.video.sampling` never imports a decoder library. Backends register
themselves by name; ``open_video(path, backend="pyav")`` imports the backend module only
when it is asked for, so a missing optional decoder (OpenCV) costs nothing until used.

Contract every backend keeps:

* ``info`` is filled on open (``VideoInfo``); width/height are the *upright* (display)
  size, ``rotation`` the display-matrix angle the backend undid.
* ``seek(t)`` positions the stream so the next ``frames()`` starts at the keyframe at or
  before ``t`` (or as near as the container allows: sampling checks the true pts).
* ``frames(keyframes_only=...)`` decodes forward from the current position and yields
  ``DecodedFrame`` objects whose ``pts_time`` is the frame's true presentation time in
  seconds (the stream's own clock, not a count divided by a rate). Pixels are converted
  only on ``.rgb()``, so frames skipped on the way to a target cost no colour conversion.
* A decode failure part way raises :class:`vidhash.errors.DecodeError` from ``frames()``
  (after the good frames were yielded), never a library-specific exception.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidhash.errors import DecodeError, UsageError


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about its first video stream (``None`` where it does not say)."""

    path: str
    backend: str
    container: str
    codec: str
    width: int  # upright (display) width
    height: int  # upright (display) height
    rotation: int  # display-matrix rotation, degrees counter-clockwise, 0/90/180/270
    duration: float | None  # seconds; None when the header has no duration
    frame_rate: float | None  # average frames per second
    frame_count: int | None  # frames the header declares; None when unknown
    start_time: float = 0.0  # pts of the first frame, seconds
    problem: str | None = (
        None  # a defect visible before decoding (e.g. frames missing from the index)
    )
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def constant_rate(self) -> bool:
        """True when frame index can be derived from pts (``extra['cfr']`` set by backend)."""
        return bool(self.extra.get("cfr", False))


@dataclass
class DecodedFrame:
    """One decoded frame: its true pts, whether it is a keyframe, and lazy upright pixels."""

    pts_time: float
    key: bool
    frame_index: int | None
    rotation: int
    _to_rgb: Callable[[], np.ndarray]

    def rgb(self) -> np.ndarray:
        """The frame as upright HxWx3 RGB uint8 (converted now, not at decode time)."""
        return self._to_rgb()


# Containers whose index lists every frame (so "index shorter than header" means frames lost).
FULL_INDEX_FORMATS = ("avi", "mov,mp4,m4a,3gp,3g2,mj2")


def lost_frames(container: str, listed: int, declared: int | None, what: str) -> str | None:
    """The :attr:`VideoInfo.problem` of a file whose container lists fewer frames than its
    header declares (a truncated download), or None; ``what`` names what was counted."""
    if not declared or container not in FULL_INDEX_FORMATS or not 1 < listed < declared * 0.99:
        return None
    return (
        f"{what} {listed} of the {declared} frames its header declares; the rest cannot be decoded"
    )


def looks_constant_rate(
    average: float | None, nominal: float | None, count: int | None, duration: float | None
) -> bool:
    """Whether a frame index may be derived from pts: the average and nominal rates agree
    and the declared frame count matches duration x rate (Matroska declares no count, so
    its index is only ever counted, never derived)."""
    if not (average and nominal and count and duration):
        return False
    if abs(average - nominal) > 1e-3 * average:
        return False
    return abs(count - duration * average) <= 1.0


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Undo a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=quarter_turns))


class VideoStream(ABC):
    """An open video. Use as a context manager; ``close()`` releases the decoder."""

    name: str = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.info: VideoInfo

    @abstractmethod
    def seek(self, t: float) -> None:
        """Position at the keyframe at or before ``t`` seconds (stream clock)."""

    @abstractmethod
    def frames(self, *, keyframes_only: bool = False) -> Iterator[DecodedFrame]:
        """Decode forward from the current position; raises DecodeError on a broken stream."""

    def read_keyframe(self, t: float) -> DecodedFrame | None:
        """The keyframe at or before ``t`` (decoding as little as possible); None at the end.

        Leaves the stream in an undefined position: seek before calling ``frames()``.
        """
        self.seek(t)
        return next(self.frames(keyframes_only=True), None)

    def keyframe_times(self) -> list[float] | None:
        """Sorted true pts of every keyframe (by reading packets, no decoding), or None.

        Sampling uses it to decide, without decoding, whether a keyframe can serve a
        sample and whether to keep decoding or seek. None (unknown) is always safe.
        The first call may move the read position: call it before decoding.
        """
        return None

    def scan_duration(self) -> float | None:
        """Find the duration by reading through (for headers without one); None if empty."""
        last: float | None = None
        self.seek(self.info.start_time)
        for frame in self.frames():
            last = frame.pts_time
        self.seek(self.info.start_time)
        if last is None:
            return None
        step = 1.0 / self.info.frame_rate if self.info.frame_rate else 0.0
        return last - self.info.start_time + step

    def derived_index(self, pts_time: float) -> int | None:
        """Frame index from pts for constant-frame-rate streams; None when it cannot be known."""
        if not self.info.constant_rate or not self.info.frame_rate:
            return None
        return max(0, round((pts_time - self.info.start_time) * self.info.frame_rate))

    @classmethod
    def missing_requirement(cls) -> str | None:
        """What this backend needs and the machine lacks (a program, say), or None.

        Checked when a backend is chosen, before any input is touched, so a missing
        decoder is one usage error rather than every input recorded as ``failed``.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release decoder resources."""

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# name -> "module:Class" (imported lazily)
_BACKENDS: dict[str, str] = {
    "pyav": "vidhash.video.backends.pyav:PyAVStream",
    "ffmpeg": "vidhash.video.backends.ffmpeg_cli:FFmpegStream",
    "opencv": "vidhash.video.backends.opencv:OpenCVStream",
}


def register_backend(name: str, target: str) -> None:
    """Register a backend as ``"package.module:ClassName"`` (a VideoStream subclass)."""
    _BACKENDS[name] = target


def backend_names() -> list[str]:
    """Names accepted by ``open_video(backend=...)``."""
    return sorted(_BACKENDS)


def backend_class(name: str) -> type[VideoStream]:
    """The VideoStream class registered under ``name``; UsageError if unknown or not installed."""
    target = _BACKENDS.get(name)
    if target is None:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"backend {name!r} is not available: {exc}") from exc
    return getattr(module, class_name)


def require_backend(name: str) -> type[VideoStream]:
    """The backend's class, once it is known usable here; UsageError naming the fix if not."""
    cls = backend_class(name)
    missing = cls.missing_requirement()
    if missing is not None:
        raise UsageError(f"backend {name!r} {missing}")
    return cls


def open_video(path: str | os.PathLike, backend: str = "pyav") -> VideoStream:
    """Open ``path`` with the named backend; DecodeError (one line) if it is not a video."""
    cls = backend_class(backend)
    try:
        return cls(path)
    except DecodeError:
        raise
    except OSError as exc:
        raise DecodeError(f"cannot open: {exc.strerror or exc}") from exc
