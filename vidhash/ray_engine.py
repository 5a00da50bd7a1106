"""The Ray Data engine: the local pipeline's stages spread over a Ray cluster.

Same inputs, same ids, same codes, same store: the driver plans the work with
``IndexRun`` (so resume and incremental rules are the local engine's), Ray runs
decode+preprocess as CPU tasks and the model in an actor pool (GPU actors when asked),
and the driver writes each finished input as one atomic Parquet part, exactly as the
local engine does. Keyframe JPEGs are encoded on the workers and only their bytes travel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vidhash.pipeline import (
    IndexOptions,
    IndexRun,
    IndexSummary,
    WorkItem,
    _Pending,
    decode_error_message,
    iter_item_frames,
    model_meta,
)


def _decode_rows(record: dict[str, Any], options: IndexOptions) -> Iterator[dict[str, Any]]:
    """One input -> its keyframe rows, then one end row carrying status and frame count."""
    import cv2

    item = WorkItem(
        Path(record["path"]),
        record["kind"],
        record["content_hash"],
        record["size_bytes"],
        record["mtime"],
    )
    blank = np.zeros((options.size, options.size, 3), np.uint8)
    n = 0
    error = None
    facts: dict[str, Any] = {}
    try:
        for row, image in iter_item_frames(item, options, facts):
            jpeg = b""
            if options.save_images:
                ok, buf = cv2.imencode(
                    ".jpg",
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality],
                )
                jpeg = buf.tobytes() if ok else b""
            n += 1
            yield {**_row_columns(record, row), "image": image, "jpeg": jpeg, "end": False}
    except Exception as exc:  # one bad input is a recorded row, never a failed job
        error = decode_error_message(exc)
    yield {
        **_row_columns(record, None),
        "image": blank,
        "jpeg": b"",
        "end": True,
        "n_frames": n,
        "error": error or "",
        "duration": facts.get("duration") or float("nan"),
    }


def _row_columns(record: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    """Fixed columns for every row, so Ray's blocks keep one schema."""
    row = row or {}
    frame_index = row.get("frame_index")
    return {
        "path": record["path"],
        "keyframe_id": row.get("keyframe_id", ""),
        "pts_time": float(row.get("pts_time", 0.0)),
        "frame_index": -1 if frame_index is None else int(frame_index),
        "width": int(row.get("width", 0)),
        "height": int(row.get("height", 0)),
        "rotation": int(row.get("rotation", 0)),
        "n_frames": 0,
        "error": "",
        "duration": float("nan"),
    }


class _EncodeActor:
    """Holds the model once per actor; turns image batches into packed codes."""

    def __init__(self, model: str, device: str) -> None:
        from vidhash.models import load_model

        self.model = load_model(model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ends = batch["end"].astype(bool)
        nbytes = (self.model.code_bits + 7) // 8
        codes = np.zeros((len(ends), nbytes), np.uint8)
        if (~ends).any():
            codes[~ends] = self.model.encode(np.stack(batch["image"][~ends]))
        out = {k: v for k, v in batch.items() if k != "image"}
        out["code"] = codes
        return out


def build_index_ray(
    inputs: str | os.PathLike,
    index_dir: str | os.PathLike,
    model: str,
    *,
    options: IndexOptions | None = None,
    reindex: bool = False,
    address: str | None = None,
    num_gpus_per_worker: float = 0.0,
    decode_cpus: float = 1.0,
    num_actors: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> IndexSummary:
    """Index INPUT on a Ray cluster (``address``; a local one when None) into ``index_dir``."""
    options = (options or IndexOptions()).validate()
    import ray

    from vidhash.models import load_model

    meta = model_meta(load_model(model, device="cpu"), model)
    run = IndexRun(inputs, index_dir, meta, options, reindex=reindex)
    if not run.items:
        return run.finish()

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    actor_device = "cuda" if num_gpus_per_worker > 0 else device
    records = [
        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(item).items()}}
        for item in run.items
    ]
    items_by_path = {str(item.path): item for item in run.items}
    pool = num_actors or max(1, int(ray.available_resources().get("GPU", 0)) or 1)

    dataset = (
        ray.data.from_items(records, override_num_blocks=len(records))
        .flat_map(_decode_rows, fn_kwargs={"options": options}, num_cpus=decode_cpus)
        .map_batches(
            _EncodeActor,
            fn_constructor_kwargs={"model": model, "device": actor_device},
            batch_size=options.batch_size,
            batch_format="numpy",
            num_gpus=num_gpus_per_worker,
            compute=ray.data.ActorPoolStrategy(size=pool),
        )
    )

    pending: dict[str, _Pending] = {}
    expected: dict[str, int] = {}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["path"])):
            path = str(batch["path"][i])
            state = pending.setdefault(path, _Pending(items_by_path[path]))
            if bool(batch["end"][i]):
                expected[path] = int(batch["n_frames"][i])
                error = str(batch["error"][i]) or None
                duration = float(batch["duration"][i])
                state.duration = None if np.isnan(duration) else duration
                if error:
                    state.error = error
                    state.status = "partial" if expected[path] else "failed"
            else:
                row = _keyframe_row(batch, i)
                if options.save_images:
                    row["image_path"] = run.write_jpeg(row["keyframe_id"], bytes(batch["jpeg"][i]))
                state.rows.append(row)
            if path in expected and len(state.rows) == expected[path]:
                state.rows.sort(key=lambda r: r["pts_time"])
                state.finished_decoding = True
                run.write_video(state.item, state)
                del pending[path], expected[path]
    return run.finish()


def _keyframe_row(batch: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    frame_index = int(batch["frame_index"][i])
    return {
        "keyframe_id": str(batch["keyframe_id"][i]),
        "pts_time": float(batch["pts_time"][i]),
        "frame_index": None if frame_index < 0 else frame_index,
        "width": int(batch["width"][i]),
        "height": int(batch["height"][i]),
        "rotation": int(batch["rotation"][i]),
        "code": np.asarray(batch["code"][i], np.uint8).tobytes(),
    }
