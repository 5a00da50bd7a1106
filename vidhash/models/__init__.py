"""Networks, backbones, checkpoints, the shipped default models, and their runtimes.

``load_model("default")`` / ``load_model("default-baseline")`` give the models shipped in
``vidhash/weights/`` (their sha256 is checked against ``vidhash/weights/models.json``);
any other argument is a checkpoint path. See docs/MODELS.md.

Two runtimes run a model: ONNX Runtime (:mod:`vidhash.models.ort`, the default, no torch)
and torch (:mod:`vidhash.models.nets`, for training and where ONNX Runtime is missing).
This module imports neither until a model is loaded, and never imports torch for the ONNX
runtime. A model's ONNX graph (:mod:`vidhash.models.graph`) ships beside a shipped model;
for another checkpoint it is ``x.onnx`` beside ``x.safetensors``, or else exported once
into ``$VIDHASH_CACHE/onnx/<model_id>.onnx`` (which needs torch).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from vidhash.errors import CheckpointError, UsageError
from vidhash.fsutil import cache_home, content_hash
from vidhash.models.header import read_header

SHIPPED_NAMES = ("default", "default-baseline")


def shipped_models() -> dict[str, dict]:
    """The registry of shipped models: name -> {file, sha256, description, metrics, ...}."""
    registry = resources.files("vidhash.weights").joinpath("models.json")
    if not registry.is_file():
        return {}
    return json.loads(registry.read_text())


def shipped_path(name: str) -> Path:
    """Path of a shipped model's file (not yet hash-checked)."""
    entry = shipped_models().get(name)
    if entry is None:
        raise CheckpointError(
            f"no shipped model named {name!r}; known: {', '.join(shipped_models())}"
        )
    return Path(str(resources.files("vidhash.weights").joinpath(entry["file"])))


RUNTIMES = ("onnx", "torch")


def default_runtime(device: str = "cpu") -> str:
    """``onnx`` where ONNX Runtime is installed (and can run on ``device``), else ``torch``.

    ``VIDHASH_RUNTIME=torch|onnx`` overrides the choice (benchmarks, a GPU box with torch).
    """
    forced = os.environ.get("VIDHASH_RUNTIME")
    if forced:
        if forced not in RUNTIMES:
            raise UsageError(f"VIDHASH_RUNTIME must be one of {', '.join(RUNTIMES)}")
        return forced
    if importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnx" if device == "cpu" or _onnx_has_cuda() else "torch"


def _onnx_has_cuda() -> bool:
    """Whether the installed ONNX Runtime can run on a GPU (``onnxruntime-gpu``)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@dataclass(frozen=True)
class ModelCard:
    """A model's identity and shape, read from its checkpoint without loading a runtime:
    what an index records (its meta) where another process does the encoding (Ray)."""

    model_id: str
    model_name: str
    code_bits: int
    descriptor_dims: int
    config: dict


def model_card(name_or_path: str) -> ModelCard:
    """The card of a shipped name or checkpoint path (the file hash-checked as for loading)."""
    path, model_id, name, header = _checked_file(name_or_path)
    dims = int((header.get("descriptor") or {}).get("dims", 0))
    return ModelCard(model_id, name, int(header["code_bits"]), dims, header)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where a GPU can run the models (ONNX Runtime's CUDA provider, or
    torch with CUDA), else ``cpu``; other names as given."""
    if device != "auto":
        return device
    if _onnx_has_cuda():
        return "cuda"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    name_or_path: str,
    device: str = "cpu",
    runtime: str | None = None,
    *,
    threads: int | None = None,
    spin: bool = True,
):  # -> OrtHashNet | HashNet
    """A hashing network ready to ``embed``: a shipped name or a checkpoint path.

    ``runtime``: ``onnx`` (ONNX Runtime, no torch) or ``torch``; None picks
    :func:`default_runtime`. Both give the same codes and the same ``model_id`` (the
    checkpoint's sha256). Shipped files are verified against the sha256 in the registry,
    so a damaged or swapped file is a :class:`CheckpointError`, never different codes.
    ``threads``/``spin``: ONNX Runtime's intra-op threads (see :mod:`vidhash.models.ort`).
    ``device``: ``cpu``, ``cuda[:N]`` or ``auto`` (:func:`resolve_device`).
    """
    device = resolve_device(device)
    runtime = runtime or default_runtime(device)
    if runtime not in RUNTIMES:
        raise UsageError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    path, model_id, name, header = _checked_file(name_or_path)
    if header["arch"] == "psp-seg":
        raise CheckpointError(
            f"{name_or_path} is a segmentation checkpoint; hashing needs a train-hash checkpoint"
        )
    if runtime == "torch":
        _require_torch("the torch runtime")
        from vidhash.models.checkpoint import load_checkpoint

        model, _ = load_checkpoint(path, device)
        model.model_id, model.model_name = model_id, name
        return model
    from vidhash.models.ort import OrtHashNet

    graph = _graph(name_or_path, path, model_id)
    return OrtHashNet.load(
        path, graph, header=header, model_id=model_id, model_name=name, device=device,
        threads=threads, spin=spin,
    )  # fmt: skip


def _checked_file(name_or_path: str) -> tuple[Path, str, str, dict]:
    """(checkpoint path, its sha256 = model_id, model name, header), each read once;
    shipped files hash-checked against the registry."""
    registry = shipped_models()
    if name_or_path in registry or name_or_path in SHIPPED_NAMES:
        path = shipped_path(name_or_path)
        if not path.is_file():
            raise CheckpointError(f"shipped model {name_or_path!r} is missing: {path}")
        expected = registry[name_or_path]["sha256"]
        actual = content_hash(path)
        if actual != expected:
            raise CheckpointError(
                f"shipped model {name_or_path!r} fails its integrity check "
                f"(sha256 {actual[:12]}.. != {expected[:12]}..): reinstall vidhash"
            )
        return path, actual, name_or_path, read_header(path)
    path = Path(name_or_path)
    header = read_header(path)  # a clear error for a missing or foreign file
    return path, content_hash(path), header.get("name") or path.stem, header


def graph_path(name_or_path: str, model_id: str) -> Path:
    """Where the ONNX graph of a model lives: beside a shipped model in the package; for a
    checkpoint, beside it (``x.onnx`` for ``x.safetensors``) or else the user cache."""
    entry = shipped_models().get(name_or_path)
    if entry is not None:
        return Path(str(resources.files("vidhash.weights").joinpath(entry["graph"])))
    beside = Path(name_or_path).with_suffix(".onnx")
    return beside if beside.is_file() else cache_home() / "onnx" / f"{model_id}.onnx"


def _graph(name_or_path: str, path: Path, model_id: str) -> bytes:
    """The graph's bytes, exported once (with torch) into the cache when there is none."""
    where = graph_path(name_or_path, model_id)
    entry = shipped_models().get(name_or_path)
    if entry is not None:
        if not where.is_file() or content_hash(where) != entry["graph_sha256"]:
            raise CheckpointError(
                f"shipped model {name_or_path!r}'s graph {where.name} is missing or fails its "
                "integrity check: reinstall vidhash"
            )
        return where.read_bytes()
    if where.is_file():
        return where.read_bytes()
    _require_torch(f"exporting {path}'s ONNX graph (none at {where})")
    export_model(path, where)
    return where.read_bytes()


def export_model(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Export a hashing checkpoint's ONNX graph (``out``: default beside it, ``x.onnx``)."""
    from vidhash.models.checkpoint import load_checkpoint
    from vidhash.models.graph import export_graph

    model, _ = load_checkpoint(checkpoint)
    out = Path(out) if out is not None else Path(checkpoint).with_suffix(".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    return export_graph(model, out, content_hash(checkpoint))


def _require_torch(what: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CheckpointError(
            f"{what} needs torch, which this install lacks: pip install 'vidhash[train]'"
        ) from None


def __getattr__(name: str):
    """Lazy access to the torch-side API (``from vidhash.models import HashNet``)."""
    if name in ("HashNet", "PSPHashNet", "BaselineHashNet", "PSPSegNet", "HashHead"):
        from vidhash.models import nets

        return getattr(nets, name)
    if name in ("get_backbone", "register_backbone", "list_backbones", "BackboneWeights"):
        from vidhash.models import backbones

        return getattr(backbones, name)
    raise AttributeError(name)


def ship_model(name: str, checkpoint: str | Path, description: str, half: bool = True) -> dict:
    """Copy a train-hash checkpoint into ``vidhash/weights/<name>.safetensors`` (fp16 when
    ``half``), export its graph beside it, and record both sha256 and the metrics in
    ``models.json`` (maintainers only)."""
    import torch

    from vidhash.fsutil import atomic_write_bytes
    from vidhash.models.checkpoint import load_checkpoint, save_checkpoint

    model, header = load_checkpoint(checkpoint)
    weights_dir = Path(str(resources.files("vidhash.weights")))
    target = weights_dir / f"{name}.safetensors"
    header = {**header, "name": name, "shipped_from": Path(checkpoint).name}
    sha = save_checkpoint(model, target, header, dtype=torch.float16 if half else None)
    graph = export_model(target, weights_dir / f"{name}.onnx")
    registry = shipped_models()
    registry[name] = {
        "file": target.name,
        "sha256": sha,
        "graph": graph.name,
        "graph_sha256": content_hash(graph),
        "arch": header["arch"],
        "backbone": header["backbone"]["name"],
        "code_bits": header["code_bits"],
        "width": header["head"]["width"],
        "head_input": header["head"].get("input"),
        "description": description,
        "metrics": header.get("metrics", {}),
        # Where every weight came from (backbone, neck + PSP, hash head), from the header.
        "provenance": header.get("provenance")
        or {"backbone": header.get("backbone", {}).get("source")},
        "data": header.get("data", []),
        # The stored descriptor (source, dims, the pool it was fitted on), if any.
        "descriptor": header.get("descriptor"),
    }
    atomic_write_bytes(weights_dir / "models.json", json.dumps(registry, indent=1).encode())
    for path in (target, graph, weights_dir / "models.json"):
        path.chmod(0o644)  # package data: readable by everyone (temp files start as 0600)
    return registry[name]
