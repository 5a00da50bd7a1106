"""Networks, backbones, checkpoints and the shipped default models.

``load_model("default")`` / ``load_model("default-baseline")`` give the models shipped in
``vidhash/weights/`` (their sha256 is checked against ``vidhash/weights/models.json``);
any other argument is a checkpoint path. See docs/MODELS.md.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from vidhash.errors import CheckpointError

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


def load_model(name_or_path: str, device: str = "cpu"):  # -> HashNet (lazy torch import)
    """A hashing network ready to ``encode``: a shipped name or a checkpoint path.

    Shipped files are verified against the sha256 in the registry, so a damaged or swapped
    file is a :class:`CheckpointError`, never silently different codes.
    """
    from vidhash.fsutil import content_hash
    from vidhash.models.checkpoint import load_checkpoint
    from vidhash.models.nets import HashNet

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
        model, _ = load_checkpoint(path, device)
        model.model_name = name_or_path
    else:
        model, _ = load_checkpoint(name_or_path, device)
    if not isinstance(model, HashNet):
        raise CheckpointError(
            f"{name_or_path} is a segmentation checkpoint; hashing needs a train-hash checkpoint"
        )
    return model


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
    ``half``) and record its sha256 and metrics in ``models.json`` (maintainers only)."""
    import torch

    from vidhash.fsutil import atomic_write_bytes, content_hash
    from vidhash.models.checkpoint import load_checkpoint, save_checkpoint

    model, header = load_checkpoint(checkpoint)
    weights_dir = Path(str(resources.files("vidhash.weights")))
    target = weights_dir / f"{name}.safetensors"
    header = {**header, "name": name, "shipped_from": Path(checkpoint).name}
    save_checkpoint(model, target, header, dtype=torch.float16 if half else None)
    registry = shipped_models()
    registry[name] = {
        "file": target.name,
        "sha256": content_hash(target),
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
    for path in (target, weights_dir / "models.json"):
        path.chmod(0o644)  # package data: readable by everyone (temp files start as 0600)
    return registry[name]
