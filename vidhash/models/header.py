"""The checkpoint file read without torch: its JSON header and its tensors as numpy.

A vidhash checkpoint is one ``.safetensors`` file (see :mod:`vidhash.models.checkpoint`
for the writer): the tensors of a network's ``state_dict`` and, in the safetensors
metadata under ``"vidhash"``, the JSON header that describes it. Inference on ONNX Runtime
needs both and nothing of torch, so they are read here with safetensors' numpy reader.
Errors are :class:`CheckpointError` in one line: a damaged file never yields a network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidhash.errors import CheckpointError

FORMAT_VERSION = 1
META_KEY = "vidhash"
ARCHS = ("psp", "baseline", "psp-seg")
HEAD_INPUTS = ("scores", "stacked", "both")  # what a PSP hash head reads
CODE_LENGTHS = (12, 16, 32, 48, 64, 128)


def read_header(path: str | Path) -> dict:
    """The JSON header of a vidhash checkpoint (CheckpointError when it is not one)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - every parse failure is "damaged"
        raise CheckpointError(
            f"{path} is damaged or not a safetensors file ({one_line(exc)})"
        ) from exc
    if META_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a vidhash checkpoint")
    try:
        header = json.loads(meta[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} has a damaged vidhash header ({exc.msg})") from exc
    if header.get("arch") not in ARCHS:
        raise CheckpointError(f"{path}: unknown arch {header.get('arch')!r}")
    return header


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint, floats widened to float32 (half-precision shipped
    files compute in float32, as the torch loader does)."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - truncated or damaged tensor data
        raise CheckpointError(f"{path} has damaged tensors ({one_line(exc)})") from exc
    return {
        name: np.ascontiguousarray(t, np.float32) if t.dtype.kind == "f" else t
        for name, t in tensors.items()
    }


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
