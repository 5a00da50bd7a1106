"""Unlabelled training pools: real photos and video frames, for the similarity objective.

``UnlabelledPool.open(["frames/", "clips/", "list.txt"], every=1.0)`` discovers inputs the
way `vidhash index` does (:func:`vidhash.video.discover`): still images are read from disk
when asked for; videos are sampled every ``every`` seconds (``fast`` mode, the index's own
sampling) once at open, and their frames are kept in memory, shrunk so the shorter side is
at most ``keep_side`` pixels (enough for the random scale crops of
:class:`vidhash.train.datasets.Views`). A damaged video contributes the frames it gave
before the damage; an unreadable one contributes none. Items are ``(image, -1)``: no
label, so the pool plugs into the same views and caches as a labelled set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidhash.errors import DecodeError, InputError
from vidhash.train.datasets import read_rgb
from vidhash.transforms import center_crop_resize

NO_LABEL = -1


@dataclass
class UnlabelledPool:
    """Photos (paths) and video frames (arrays) from folders, files or list files."""

    sources: list[str]
    images: list[Path] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    frame_origin: list[str] = field(default_factory=list)
    size: int = 224

    @classmethod
    def open(
        cls,
        sources: list[str | os.PathLike],
        every: float = 1.0,
        keep_side: int = 448,
        size: int = 224,
        log=print,
    ) -> UnlabelledPool:
        from vidhash.video.discover import discover
        from vidhash.video.sampling import sample_frames
        from vidhash.video.stream import open_video

        found = discover([str(s) for s in sources])
        pool = cls([str(s) for s in sources], list(found.images), size=size)
        for video in found.videos:
            before = len(pool.frames)
            try:
                with open_video(video) as stream:
                    for frame in sample_frames(stream, every=every, mode="fast"):
                        pool.frames.append(_shrink(frame.rgb(), keep_side))
                        pool.frame_origin.append(str(video))
            except DecodeError as exc:
                log(f"unlabelled pool: {video}: kept {len(pool.frames) - before} frames ({exc})")
        if not len(pool):
            raise InputError(f"no images or video frames found in {', '.join(pool.sources)}")
        return pool

    def __len__(self) -> int:
        return len(self.images) + len(self.frames)

    def raw(self, i: int) -> tuple[np.ndarray, int]:
        if i < len(self.images):
            return read_rgb(self.images[i]), NO_LABEL
        return self.frames[i - len(self.images)], NO_LABEL

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        image, label = self.raw(i)
        return center_crop_resize(image, self.size), label

    def keys(self) -> list[str]:
        """One stable string per item (its file, or its video and rank), for cache keys."""
        keys = [str(p.resolve()) for p in self.images]
        prefix = {o: f"{Path(o).resolve()}#{os.path.getsize(o)}" for o in set(self.frame_origin)}
        rank: dict[str, int] = {}
        for origin in self.frame_origin:
            rank[origin] = rank.get(origin, -1) + 1
            keys.append(f"{prefix[origin]}#{rank[origin]}")
        return keys


def _shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    """Downscale so the shorter side is at most ``side`` (area interpolation)."""
    h, w = rgb.shape[:2]
    scale = side / min(h, w)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
