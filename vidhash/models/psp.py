"""The pyramid scene parsing (PSP) module, as the paper specifies it.

Shaped like segmentation_models_pytorch's PSPNet: an encoder (our backbone), a
:class:`PSPDecoder` (pyramid pooling + fusion conv) and a :class:`SegmentationHead`
(1x1 conv to classes, upsample to the mask size, log-softmax), each usable alone.

Input is the stride-8 map (28x28xN at 224). Four average-pooling streams with bins of
28, 14, 9 and 7 pixels (kernel = stride = bin) give 1x1, 2x2, 3x3 and 4x4 grids; each
goes through a 1x1 conv to N/4 channels, BN, ReLU and bilinear upsampling back to 28x28.
The original map and the four streams are stacked (2N channels) and fused by conv, BN,
ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAPER_BINS = (28, 14, 9, 7)
IGNORE_INDEX = 255


class PyramidStream(nn.Module):
    """AvgPool(bin, stride=bin) -> 1x1 conv -> BN -> ReLU -> bilinear upsample to input size."""

    def __init__(self, in_channels: int, out_channels: int, bin_size: int) -> None:
        super().__init__()
        self.bin_size = bin_size
        self.pool = nn.AvgPool2d(kernel_size=bin_size, stride=bin_size)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The stream's grid before upsampling (1x1 .. 4x4 for a 28x28 input)."""
        return F.relu(self.bn(self.conv(self.pool(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            self.pooled(x), size=x.shape[-2:], mode="bilinear", align_corners=False
        )


class PSPDecoder(nn.Module):
    """Pyramid pooling + fusion. ``forward`` returns (stacked 2N-channel map, fused map)."""

    def __init__(
        self, in_channels: int, out_channels: int, bins: tuple[int, ...] = PAPER_BINS
    ) -> None:
        super().__init__()
        if in_channels % len(bins):
            raise ValueError(f"in_channels {in_channels} not divisible by {len(bins)} streams")
        branch = in_channels // len(bins)
        self.bins = tuple(bins)
        self.stacked_channels = in_channels + branch * len(bins)
        self.out_channels = out_channels
        self.streams = nn.ModuleList(PyramidStream(in_channels, branch, b) for b in bins)
        self.fuse = nn.Sequential(
            nn.Conv2d(self.stacked_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def stack(self, x: torch.Tensor) -> torch.Tensor:
        """The map and its four upsampled streams (2N channels): what the hash head reads."""
        return torch.cat([x, *(stream(x) for stream in self.streams)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stacked = self.stack(x)
        return stacked, self.fuse(stacked)


class SegmentationHead(nn.Module):
    """1x1 conv to class scores; ``forward`` upsamples them and applies log-softmax.

    With ``detail_channels`` (DeepLabv3+'s decoder), the fused 28x28 map is first brought
    up to a finer backbone map (e.g. the stride-4 ``s4``), joined with a 48-channel
    projection of it and refined by 1x1 and 3x3 convs: thin things (poles, signs,
    people) span a pixel or two at stride 8, and this is where they are found again.
    Only segmentation reads it; the hash head reads the PSP's stacked map.
    """

    def __init__(
        self, in_channels: int, num_classes: int, detail_channels: int = 0, refine: int = 64
    ) -> None:
        super().__init__()
        self.detail = None
        if detail_channels:
            project = 48
            self.detail = nn.Sequential(
                nn.Conv2d(detail_channels, project, 1, bias=False),
                nn.BatchNorm2d(project),
                nn.ReLU(inplace=True),
            )
            self.refine = nn.Sequential(
                nn.Conv2d(in_channels + project, refine, 1, bias=False),
                nn.BatchNorm2d(refine),
                nn.ReLU(inplace=True),
                nn.Conv2d(refine, refine, 3, padding=1, bias=False),
                nn.BatchNorm2d(refine),
                nn.ReLU(inplace=True),
            )
            in_channels = refine
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)

    def scores(self, fused: torch.Tensor, detail: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-softmax class scores (at the feature resolution, or the detail map's)."""
        if self.detail is not None:
            if detail is None:
                raise ValueError("this segmentation head needs its detail map")
            up = F.interpolate(fused, size=detail.shape[-2:], mode="bilinear", align_corners=False)
            fused = self.refine(torch.cat([up, self.detail(detail)], dim=1))
        return self.classifier(fused)

    def forward(
        self, fused: torch.Tensor, size: tuple[int, int], detail: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores = self.scores(fused, detail)
        up = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        return F.log_softmax(up, dim=1)


def segmentation_loss(
    log_probs: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """NLL on log-softmax output (optionally class-weighted); pixels labelled 255 are ignored."""
    return F.nll_loss(log_probs, masks.long(), weight=weights, ignore_index=IGNORE_INDEX)
