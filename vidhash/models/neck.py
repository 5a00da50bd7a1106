"""The neck: a multi-scale backbone's maps fused into one 28x28 map for the PSP.

The paper's PSP reads a stride-8 map (VGG16 conv4_3). An early stride-8 block of a mobile
network is shallow: it knows edges and textures, not objects or scenes (a linear probe on
Lite0's ``_blocks[4]`` scores 0.61 on CIFAR-10 where its stride-32 head scores 0.75).
PSPNet's own answer, dilating the backbone to stride 8, costs 4x the compute here and is
worse without fine-tuning. So, as FPN, DeepLabv3+'s decoder and LR-ASPP do, the deep
maps are brought *up* to the 28x28 grid instead: each level gets a 1x1 lateral
projection (conv + BN, linear, so no information is clipped away), is bilinearly upsampled
to the stride-8 size and concatenated. The PSP then still reads a 28x28 map, one that
knows objects and scenes, at about the stride-32 network's cost.

``FusionNeck(levels={"s8": 64, "s16": 128, "head": 256}, in_channels=backbone.levels)``
maps ``{"s8": (N,40,28,28), "s16": (N,112,14,14), "head": (N,1280,7,7), ...}`` to
``(N, 64 + 128 + 256, 28, 28)``. Levels not named are ignored; the first named level's
size is the output size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Lateral(nn.Sequential):
    """1x1 conv + BN: a linear projection of one level's channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )


class FusionNeck(nn.Module):
    """Lateral projections of the named levels, upsampled to the first level's size, stacked."""

    def __init__(self, levels: dict[str, int], in_channels: dict[str, int]) -> None:
        super().__init__()
        missing = [name for name in levels if name not in in_channels]
        if missing:
            raise ValueError(f"backbone has no level(s) {missing}; it has {sorted(in_channels)}")
        self.levels = dict(levels)
        self.laterals = nn.ModuleDict(
            {name: Lateral(in_channels[name], ch) for name, ch in levels.items()}
        )
        self.out_channels = sum(levels.values())

    def forward(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        names = list(self.levels)
        size = maps[names[0]].shape[-2:]
        parts = []
        for name in names:
            x = self.laterals[name](maps[name])
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            parts.append(x)
        return torch.cat(parts, dim=1)
