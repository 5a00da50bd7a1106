"""On-disk cache of frozen-module outputs, so later epochs cost only the trainable part.

When the backbone (and optionally the PSP) is frozen, its output for a given image never
changes: computing it once and reading it back from a memory-mapped ``.npy`` (fp16) turns
an epoch of a CPU-bound CNN into an epoch of small matrix products. The file name is a
hash of everything that determines the values (the frozen weights' digest, the image
list, the crop size), so a changed model or data set never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidhash.fsutil import atomic_path


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def cached_outputs(
    compute: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence,
    key_parts: dict,
    cache_dir: str | Path,
    batch_size: int = 32,
    device: str = "cpu",
    desc: str = "caching",
) -> np.ndarray:
    """Outputs of ``compute`` for every ``images[i][0]`` (uint8 HWC), memory-mapped fp16.

    ``compute`` takes a float NCHW batch in [0, 1] on ``device`` and returns a tensor with
    the same leading dimension. Built once (atomically); later calls just map the file.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / f"{cache_key(key_parts)}.npy"
    if final.is_file():
        return np.load(final, mmap_mode="r")
    started = time.time()
    out: np.ndarray | None = None
    with atomic_path(final) as tmp, torch.inference_mode():
        for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch"):
            stop = min(start + batch_size, len(images))
            batch = np.stack([images[i][0] for i in range(start, stop)])
            x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            y = compute(x).float().cpu().numpy().astype(np.float16)
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float16, shape=(len(images), *y.shape[1:])
                )
            out[start:stop] = y
        if out is None:
            raise ValueError("nothing to cache: empty image list")
        out.flush()
        del out
    meta = {"key": key_parts, "count": len(images), "seconds": round(time.time() - started, 1)}
    (cache_dir / f"{final.stem}.json").write_text(json.dumps(meta, indent=1))
    return np.load(final, mmap_mode="r")


def files_fingerprint(paths: Sequence) -> str:
    """sha256 of the ordered file list (names and sizes), to key a data set's cache."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(f"{p.resolve()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def backbone_cache_key(backbone: torch.nn.Module, name: str, paths: Sequence, size: int) -> dict:
    """The cache key of a frozen backbone's feature maps over an ordered list of files."""
    return {
        "stage": "backbone",
        "backbone": name,
        "weights": state_digest(backbone),
        "files": files_fingerprint(paths),
        "size": size,
    }
