"""On-disk cache of frozen-module outputs, so later epochs cost only the trainable part.

When the backbone (and optionally the PSP) is frozen, its output for a given image never
changes: computing it once and reading it back from a memory-mapped ``.npy`` (fp16) turns
an epoch of a CPU-bound CNN into an epoch of small matrix products. The file name is a
hash of everything that determines the values (the frozen weights' digest, the image
list, the crop size), so a changed model or data set never reads a stale cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidhash.fsutil import atomic_path, atomic_write_bytes


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


class ChunkedArray:
    """Read-only row access over several memory-mapped ``.npy`` chunks, as one array."""

    def __init__(self, chunks: list[np.ndarray]) -> None:
        self.chunks = chunks
        self.bounds = np.cumsum([0] + [len(c) for c in chunks])
        self.shape = (int(self.bounds[-1]), *chunks[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(len(self))[index]
        if np.ndim(rows) == 0:
            return self[np.array([rows])][0]
        which = np.searchsorted(self.bounds, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), self.chunks[0].dtype)
        for c in np.unique(which):
            sel = which == c
            out[sel] = self.chunks[c][rows[sel] - self.bounds[c]]
        return out


def cached_outputs(
    compute: Callable[[torch.Tensor], torch.Tensor | dict[str, torch.Tensor]],
    images: Sequence,
    key_parts: dict,
    cache_dir: str | Path,
    batch_size: int | None = None,
    device: str = "cpu",
    desc: str = "caching",
    chunk_keys: Sequence[str] | None = None,
    chunk_size: int = 1000,
) -> ChunkedArray | dict[str, ChunkedArray]:
    """Outputs of ``compute`` for every ``images[i][0]`` (uint8 HWC), memory-mapped fp16.

    ``compute`` takes a float NCHW batch in [0, 1] on ``device`` and returns a tensor with
    the same leading dimension, or a dict of such tensors (a multi-scale backbone's maps:
    then a dict of arrays comes back, one per name). The rows are stored in chunks of
    ``chunk_size``, each built once (atomically) and named by ``key_parts`` + that chunk's
    own key (``chunk_keys[k]``), so an interrupted run keeps its finished chunks and a
    larger data set whose list starts with the same files reuses them.
    """
    if batch_size is None:  # small on CPU, where batch 4 runs 2-4x faster than 32 (cache-bound)
        batch_size = 4 if str(device).startswith("cpu") else 64
    cache_dir = Path(cache_dir)
    n_chunks = -(-len(images) // chunk_size)
    if n_chunks == 0:
        raise ValueError("nothing to cache: empty image list")
    chunks: list[dict[str, np.ndarray]] = []
    for k in range(n_chunks):
        lo, hi = k * chunk_size, min((k + 1) * chunk_size, len(images))
        part = chunk_keys[k] if chunk_keys is not None else f"{k}/{n_chunks}"
        stem = cache_key({**key_parts, "chunk": part, "rows": hi - lo})
        index = cache_dir / f"{stem}.json"
        if not index.is_file():
            _build_chunk(compute, images, lo, hi, cache_dir, stem, batch_size, device,
                         f"{desc} {k + 1}/{n_chunks}")  # fmt: skip
        names = json.loads(index.read_text())["arrays"]
        chunks.append({name: np.load(cache_dir / f"{stem}{name}.npy", mmap_mode="r")
                       for name in names})  # fmt: skip
    names = list(chunks[0])
    arrays = {name: ChunkedArray([c[name] for c in chunks]) for name in names}
    return arrays[""] if names == [""] else arrays


def _build_chunk(compute, images, lo, hi, cache_dir, stem, batch_size, device, desc) -> None:
    """Write one chunk's arrays (``<stem><name>.npy``), then its index ``<stem>.json``: the
    index is the commit record, so a chunk interrupted half-way is simply rebuilt."""
    started = time.time()
    out: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack, torch.inference_mode():
        for start in tqdm(range(lo, hi, batch_size), desc=desc, unit="batch", leave=False):
            stop = min(start + batch_size, hi)
            batch = np.stack([images[i][0] for i in range(start, stop)])
            x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            y = compute(x)
            for name, t in y.items() if isinstance(y, dict) else [("", y)]:
                values = t.float().cpu().numpy().astype(np.float16)
                if name not in out:
                    tmp = stack.enter_context(atomic_path(cache_dir / f"{stem}{name}.npy"))
                    out[name] = np.lib.format.open_memmap(
                        tmp, mode="w+", dtype=np.float16, shape=(hi - lo, *values.shape[1:])
                    )
                out[name][start - lo : stop - lo] = values
        for array in out.values():
            array.flush()
        out_names = list(out)
        out.clear()
    meta = {"rows": [lo, hi], "arrays": out_names, "seconds": round(time.time() - started, 1)}
    atomic_write_bytes(cache_dir / f"{stem}.json", json.dumps(meta).encode())


def files_fingerprint(paths: Sequence) -> str:
    """sha256 of the ordered item list, to key a data set's cache: a file by its absolute
    path and size; any other key (a video frame, ``"<video>#<rank>"``) as it is."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p)
        item = f"{path.resolve()}\0{path.stat().st_size}" if path.is_file() else str(p)
        h.update(f"{item}\n".encode())
    return h.hexdigest()


def backbone_cache_key(backbone: torch.nn.Module, name: str, size: int) -> dict:
    """The cache key of a frozen backbone's feature maps (chunks add their file lists)."""
    return {"stage": "backbone", "backbone": name, "weights": state_digest(backbone), "size": size}


# Cached rows: one array, or one per map name (a multi-scale backbone's levels).
Cached = ChunkedArray | dict[str, ChunkedArray]
Rows = torch.Tensor | dict[str, torch.Tensor]


def backbone_maps(
    backbone: torch.nn.Module,
    name: str,
    images: Sequence,
    keys: Sequence[str],
    levels: list[str],
    *,
    size: int,
    seed: int,
    cache_dir: str | Path,
    device: torch.device | str,
    desc: str,
) -> Cached:
    """The frozen ``backbone``'s ``levels`` (all of its output when empty) for every row of
    ``images`` (a :class:`~vidhash.train.datasets.Views`: ``n_views`` rows per item; ``keys``:
    one per item), cached on disk. Keyed by the backbone alone (name, weights), the levels,
    crops and seed, so both phases, the proposed net, its baseline and later runs share it."""
    backbone.eval()

    def compute(x: torch.Tensor) -> Rows:
        out = backbone(x)
        return {k: out[k] for k in levels} if levels else out

    n_views = getattr(images, "n_views", 1)
    key = {**backbone_cache_key(backbone, name, size), "levels": levels, "views": n_views,
           "seed": seed}  # fmt: skip
    return cached_outputs(
        compute, images, key, Path(cache_dir).expanduser(), None, str(device), desc=desc,
        chunk_keys=chunk_fingerprints([k for k in keys for _ in range(n_views)]),
    )  # fmt: skip


def rows(arrays: Cached | np.ndarray, idx: np.ndarray, device: torch.device | str) -> Rows:
    """Cached rows as float32 tensors on ``device``: one array, or a dict of them
    (multi-scale maps) -> a dict of tensors."""
    if isinstance(arrays, dict):
        return {k: rows(v, idx, device) for k, v in arrays.items()}
    return torch.from_numpy(np.asarray(arrays[idx], np.float32)).to(device)


def chunk_fingerprints(paths: Sequence, chunk_size: int = 1000) -> list[str]:
    """One fingerprint per chunk of an ordered file list (the chunk keys of the cache)."""
    return [files_fingerprint(paths[i : i + chunk_size]) for i in range(0, len(paths), chunk_size)]
