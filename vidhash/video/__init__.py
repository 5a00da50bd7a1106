"""Video input: discover inputs, open them through a backend, sample keyframes (no torch).

Public API::

    discover(inputs) -> Discovered(videos, images, skipped)
    open_video(path, backend="pyav") -> VideoStream
    probe(path, backend="pyav") -> VideoInfo
    iter_keyframes(path, *, video_hash, every=2.0, count=None, mode="fast",
                   backend="pyav", size=224, facts=None) -> Iterator[Keyframe]
"""

from vidhash.video.discover import Discovered, Skipped, discover
from vidhash.video.sampling import Keyframe, iter_keyframes, probe, sample_frames, sample_times
from vidhash.video.stream import VideoInfo, VideoStream, backend_names, open_video

__all__ = [
    "Discovered",
    "Keyframe",
    "Skipped",
    "VideoInfo",
    "VideoStream",
    "backend_names",
    "discover",
    "iter_keyframes",
    "open_video",
    "probe",
    "sample_frames",
    "sample_times",
]
