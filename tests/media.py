"""Real, small test media made with PyAV from scikit-image photos.

Tests never ship binary media and never read ``../shared``: they encode what they need here.
Clips are tiny (tens to a few hundred frames, <= a few hundred pixels) so a whole suite
encodes its inputs in a second or two. Each frame carries a distinct picture (a photo,
shifted a little per frame) plus a bright bar whose position encodes the frame number, so
tests can tell *which* frame a decoder delivered, and which way up it is.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# suffix -> container format name for PyAV
_CONTAINERS: dict[str, str] = {
    ".mp4": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".mpg": "mpeg",
}

# codec name the caller asks for -> encoder name in PyAV/FFmpeg
_ENCODERS: dict[str, str] = {
    "h264": "libx264",
    "libx264": "libx264",
    "mpeg4": "mpeg4",
    "vp9": "libvpx-vp9",
    "vp8": "libvpx",
    "mjpeg": "mjpeg",
    "mpeg2video": "mpeg2video",
}

PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")


def photo(name: str) -> np.ndarray:
    """An RGB uint8 photo shipped by scikit-image (``astronaut``, ``chelsea``, ...)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    width, height = size
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def frame_picture(index: int, size: tuple[int, int], photos: Sequence[np.ndarray]) -> np.ndarray:
    """The picture for frame ``index``: a photo (changing every 10 frames), rolled a little,
    with a white marker block in the TOP-LEFT corner (so orientation can be checked)."""
    width, height = size
    base = photos[(index // 10) % len(photos)]
    image = np.roll(base, shift=index % 10, axis=1).copy()
    block = max(4, min(width, height) // 6)
    image[:block, :block] = 255
    return image


def make_video(
    path: str | os.PathLike,
    *,
    codec: str = "h264",
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (96, 64),
    gop: int | None = None,
    rotate: int | None = None,
    vfr: bool = False,
    frames_from: Sequence[str] = PHOTOS,
    faststart: bool = False,
    streaming: bool = False,
) -> Path:
    """Encode a small real video at ``path`` (container chosen by the suffix).

    ``gop``: frames between keyframes (default: the encoder's). ``rotate``: display-matrix
    rotation in degrees counter-clockwise, as players and ``VideoFrame.rotation`` read it;
    ``size`` stays the *display* size: the stored pixels are the upright picture turned the
    other way (like a phone held sideways), so only a reader that applies the rotation sees
    the marker block top-left at ``size``. ``faststart``: MP4 index at the front, so a
    truncated copy still opens (and then stops decoding part way). ``streaming``: write
    through a non-seekable pipe, as a live recorder does: Matroska/WebM then has no
    duration and no cues in its header. ``vfr``: frame
    intervals alternate 1/fps and 3/fps (timestamps in milliseconds), so a
    variable-frame-rate file whose frame index and time do not map linearly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = _CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"no container known for suffix {path.suffix!r}")
    encoder = _ENCODERS.get(codec, codec)
    width, height = size
    photos = [_resize(photo(name), size) for name in frames_from]
    quarter_turns = round((rotate or 0) / 90) % 4
    if quarter_turns % 2:
        width, height = height, width  # stored (coded) size

    if vfr:
        time_base = Fraction(1, 1000)
        step_ms = round(1000 / fps)
        pts_list: list[int] = []
        t = 0
        while t < seconds * 1000:
            pts_list.append(t)
            t += step_ms if len(pts_list) % 2 else 3 * step_ms
    else:
        time_base = Fraction(1, fps)
        pts_list = list(range(round(seconds * fps)))

    container_options = {"movflags": "faststart"} if faststart else {}
    with contextlib.ExitStack() as stack:
        target: object = str(path)
        if streaming:
            target = _NonSeekable(stack.enter_context(open(path, "wb")))
        container = stack.enter_context(
            av.open(target, mode="w", format=fmt, options=container_options)
        )
        stream = container.add_stream(encoder, rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuvj420p" if encoder == "mjpeg" else "yuv420p"
        if encoder != "mjpeg" or vfr:
            stream.codec_context.time_base = time_base
        options: dict[str, str] = {}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if encoder == "libx264":
            # No B-frames (pts == decode order), and with a gop a fixed keyframe interval
            # without scene-cut keyframes, so seek tests know where the keyframes are.
            options.update({"preset": "ultrafast", "bf": "0"})
            if gop is not None:
                options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        if encoder == "libvpx-vp9":
            options.update({"deadline": "realtime", "cpu-used": "8"})
        if options:
            stream.codec_context.options = options
        if rotate:
            stream.set_display_rotation(rotate)
        for index, pts in enumerate(pts_list):
            picture = frame_picture(index, size, photos)
            if quarter_turns:
                picture = np.ascontiguousarray(np.rot90(picture, k=-quarter_turns))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = pts
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


class _NonSeekable(io.RawIOBase):
    """A write-only file that refuses to seek, like a pipe."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        return self._raw.write(data)


def truncate(
    path: str | os.PathLike, fraction: float, out: str | os.PathLike | None = None
) -> Path:
    """Copy the first ``fraction`` of ``path``'s bytes to ``out`` (default ``<stem>-cut<ext>``).

    Models a download or copy that stopped part way: the header is intact, the tail gone.
    """
    path = Path(path)
    out = Path(out) if out is not None else path.with_name(f"{path.stem}-cut{path.suffix}")
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def make_image(
    path: str | os.PathLike, *, name: str = "chelsea", size: tuple[int, int] | None = None
) -> Path:
    """Write a still photo (JPEG/PNG/WebP/BMP by suffix) with OpenCV."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = photo(name)
    if size is not None:
        image = _resize(image, size)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"OpenCV could not write {path}")
    return path


def random_bytes(path: str | os.PathLike, n: int = 20_000, seed: int = 0) -> Path:
    """A file of random bytes (e.g. named ``.mp4``): what a corrupted download looks like."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def copy_media(media_dir: Path, names: Sequence[str], folder: Path) -> Path:
    """A private copy of some of the session's media in ``folder`` (tests may change it)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(media_dir / name, folder / name)
    return folder
