"""Builds small real indexes (real Parquet via IndexStore) for the index, search and CLI tests.

Codes come from a seeded RNG, optionally from a tiny alphabet so distances tie a lot.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vidhash.fsutil import keyframe_id
from vidhash.index import IndexStore

MODEL = {
    "model_id": "a" * 64,
    "model_name": "test-model",
    "model_config": {"bits": 48},
    "code_bits": 48,
}


def content_of(name: str) -> str:
    """A stand-in content hash (real sha256 of a name), as the pipeline would compute."""
    return hashlib.sha256(name.encode()).hexdigest()


def keyframes_for(video_hash: str, codes: np.ndarray, step: float = 1.0) -> list[dict]:
    return [
        {
            "keyframe_id": keyframe_id(video_hash, i * step),
            "pts_time": i * step,
            "frame_index": i,
            "width": 64,
            "height": 48,
            "rotation": 0,
            "code": code,
        }
        for i, code in enumerate(codes)
    ]


def build_index(
    root: Path,
    n_videos: int = 4,
    per_video: int = 5,
    seed: int = 0,
    alphabet: int = 256,
    images: bool = False,
    model: dict = MODEL,
) -> dict[str, np.ndarray]:
    """Write ``n_videos`` inputs with random codes; returns video_path -> its codes."""
    rng = np.random.default_rng(seed)
    nbytes = (model["code_bits"] + 7) // 8
    written = {}
    with IndexStore.open(root, model_meta=model, create=True) as store:
        for v in range(n_videos):
            path = f"videos/clip{v}.mp4"
            content = content_of(path)
            codes = rng.integers(0, alphabet, (per_video, nbytes), dtype=np.uint8)
            frames = keyframes_for(content, codes)
            if images:
                for kf in frames:
                    color = rng.integers(0, 256, 3, dtype=np.uint8)
                    store.write_image(kf["keyframe_id"], np.full((48, 64, 3), color, np.uint8))
            row = {
                "video_path": path,
                "content_hash": content,
                "status": "ok",
                "size_bytes": 1000 + v,
                "mtime": 1.7e9,
                "duration": float(per_video),
            }
            store.write_video(row, frames)
            written[path] = codes
    return written
