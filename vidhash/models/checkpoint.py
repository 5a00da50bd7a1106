"""The one checkpoint format: a single ``.safetensors`` file, tensors + a JSON header.

The header sits in the safetensors metadata under the key ``"vidhash"`` and records
everything needed to rebuild the network without the training code: architecture,
backbone, class names, code length, preprocessing, head config, training config and
metrics. Loading parses JSON and raw tensors only; nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidhash.errors import CheckpointError
from vidhash.fsutil import atomic_path, content_hash
from vidhash.models.backbones import get_backbone
from vidhash.models.header import ARCHS, FORMAT_VERSION, META_KEY, read_header
from vidhash.models.header import one_line as _one_line
from vidhash.models.nets import BaselineHashNet, HashNet, PSPHashNet, PSPSegNet


def save_checkpoint(
    model: torch.nn.Module, path: str | Path, header: dict, dtype: torch.dtype | None = None
) -> str:
    """Write ``model``'s state + ``header`` atomically; returns the file's sha256.

    ``dtype=torch.float16`` stores floating tensors in half precision (shipped models);
    loading casts them back to the module's float32.
    """
    if header.get("arch") not in ARCHS:
        raise ValueError(f"header arch must be one of {ARCHS}")
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    header = {**header, "format": FORMAT_VERSION, "dtype": str(dtype or "float32")}
    descriptor = getattr(model, "descriptor", None)
    if descriptor is not None:  # its settings travel with its tensors
        header["descriptor"] = {**header.get("descriptor", {}), **descriptor.config()}
    else:
        header.pop("descriptor", None)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(header)})
    return content_hash(path)


def build_from_header(header: dict) -> torch.nn.Module:
    """An untrained network with the architecture the header describes (random backbone)."""
    model = _build_net(header)
    if "descriptor" in header:
        model.add_descriptor(header["descriptor"]["source"], int(header["descriptor"]["dims"]))
    return model


def _build_net(header: dict) -> torch.nn.Module:
    backbone = get_backbone(header["backbone"]["name"], weights="none")
    head = header.get("head", {})
    if header["arch"] == "psp-seg":
        return PSPSegNet(
            backbone,
            len(header["seg_classes"]),
            head["decoder_channels"],
            head.get("neck"),
            head.get("detail"),
        )
    if header["arch"] == "psp":
        return PSPHashNet(
            backbone,
            len(header["seg_classes"]),
            head["decoder_channels"],
            header["code_bits"],
            len(header["classes"]),
            head["width"],
            head["input"],
            head["pool"],
            head.get("neck"),
            head.get("detail"),
            head.get("levels"),
        )
    return BaselineHashNet(
        backbone,
        header["code_bits"],
        len(header["classes"]),
        head["width"],
        head["pool"],
        head.get("levels"),
    )


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the network in ``path`` (strict keys and shapes) and return it with its header."""
    path = Path(path)
    header = read_header(path)
    try:
        model = build_from_header(header)
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open API
        model.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - mismatched or truncated tensors
        raise CheckpointError(f"{path} does not match its header: {_one_line(exc)}") from exc
    model.to(device).eval()
    _restore_provenance(model, header)
    if isinstance(model, HashNet):
        model.model_id = content_hash(path)
        model.model_name = header.get("name") or path.stem
        model.classes = list(header["classes"])
        model.config = header
    return model, header


def _restore_provenance(model: torch.nn.Module, header: dict) -> None:
    """The rebuilt backbone started random (``weights="none"``) before its tensors were
    loaded: give it back the header's record of where its weights came from, so a model
    trained from this checkpoint says the truth (not ``"source": "random"``)."""
    backbone = getattr(model, "backbone", None)
    recorded = header.get("backbone", {})
    if backbone is None or "source" not in recorded:
        return
    meta = {**backbone.weights_info.meta}
    meta.update(
        {k: v for k, v in recorded.items() if k in ("source", "license", "layer", "layers")}
    )
    backbone.weights_info = dataclasses.replace(backbone.weights_info, meta=meta)
