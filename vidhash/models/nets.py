"""The networks: segmentation (phase 1), PSP hashing and the DLBHC baseline (phase 2).

``PSPHashNet = backbone -> PSP -> hash head`` and ``BaselineHashNet = backbone -> pool ->
hash head``: both share :class:`HashHead` and the same pooling, so the comparison differs
only in whether the PSP module sits in between.

What the hash head reads from the PSP (``head_input``) is a choice the paper leaves open;
it is measured in ``benchmarks/ablation_head_input.py`` (see docs/results/models.md):

* ``scores``: the pre-softmax class scores (C_seg x 28 x 28), adaptively average-pooled
  to ``pool x pool``;
* ``stacked``: the stacked map (original + four streams, 2N channels), pooled the same way;
* ``both``: the two concatenated.

``stacked`` is the default: it scored best in the ablation (docs/results/models.md); the
class scores alone carry too little for classes the segmentation labels do not name.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidhash.models.backbones import Backbone
from vidhash.models.descriptor import Descriptor
from vidhash.models.encoder import CPU_MICRO_BATCH, GPU_MICRO_BATCH, Embedding, embed_batches
from vidhash.models.header import CODE_LENGTHS, HEAD_INPUTS  # noqa: F401 - re-exported
from vidhash.models.neck import FusionNeck
from vidhash.models.psp import PSPDecoder, SegmentationHead

# Forward micro-batches for encode(): small on CPU (cache-bound), large on GPU.


def _level_channels(backbone: Backbone, levels: list[str]) -> int:
    """Channels of the named backbone levels together (a head reads them pooled)."""
    missing = [name for name in levels if name not in backbone.levels]
    if missing:
        raise ValueError(f"levels {missing} are not among {sorted(backbone.levels)}")
    return sum(backbone.levels[name] for name in levels)


def _pool_flat(grids: list[torch.Tensor], pool: int) -> torch.Tensor:
    """Each map adaptive-average-pooled to ``pool x pool``, flattened, side by side."""
    return torch.cat([torch.flatten(F.adaptive_avg_pool2d(g, pool), 1) for g in grids], 1)


class HashHead(nn.Module):
    """FC width (ReLU) -> FC width (ReLU) -> FC L (sigmoid: the hash layer) -> FC C (logits)."""

    def __init__(
        self,
        in_features: int,
        code_bits: int,
        num_classes: int,
        width: int = 4096,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(in_features, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.hash = nn.Linear(width, code_bits)
        self.classifier = nn.Linear(code_bits, num_classes)

    @torch.no_grad()
    def init_linear_code(self, mean: np.ndarray, projection: np.ndarray, scale: float) -> None:
        """Start as the linear code ``sign((x - mean) @ projection)`` (e.g. PCA-ITQ).

        FC1's first 2L units hold ``+u`` and ``-u`` for ``u = (x - mean) @ projection`` (so
        the ReLUs pass all of it), FC2 copies them, and the hash layer adds them back
        scaled: ``z = scale * u``. The other units start near silent (weights x 0.01), so
        training grows them only where they help.
        """
        bits = projection.shape[1]
        fc1, fc2 = self.fc[0], self.fc[3]
        if fc1.out_features < 2 * bits or projection.shape[0] != fc1.in_features:
            raise ValueError(f"a linear {projection.shape} code needs width >= {2 * bits}")
        a = torch.as_tensor(projection.T, dtype=fc1.weight.dtype)
        shift = a @ torch.as_tensor(mean, dtype=fc1.weight.dtype)
        for layer in (fc1, fc2, self.hash):
            layer.weight.mul_(0.01)
            layer.bias.zero_()
        fc1.weight[:bits], fc1.bias[:bits] = a, -shift
        fc1.weight[bits : 2 * bits], fc1.bias[bits : 2 * bits] = -a, shift
        eye = torch.eye(2 * bits, dtype=fc2.weight.dtype)
        fc2.weight[: 2 * bits, : 2 * bits] = eye
        fc2.weight[: 2 * bits, 2 * bits :] = 0.0
        self.hash.weight[:, :bits] = scale * torch.eye(bits)
        self.hash.weight[:, bits : 2 * bits] = -scale * torch.eye(bits)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(r in (0,1) of shape (N, L), class logits (N, C)). Softmax lives in the loss."""
        r = torch.sigmoid(self.hash(self.fc(features)))
        return r, self.classifier(r)


class HashNet(nn.Module):
    """Common face of the hashing networks: metadata, head features, ``encode``/``embed``."""

    backbone: Backbone
    head: HashHead
    descriptor: Descriptor | None
    runtime = "torch"  # what runs it (vidhash.models.ort.OrtHashNet says "onnx")

    def __init__(self) -> None:
        super().__init__()
        self.model_id: str = ""
        self.model_name: str = ""
        self.classes: list[str] = []
        self.config: dict = {}
        self.descriptor = None

    @property
    def code_bits(self) -> int:
        return self.head.hash.out_features

    @property
    def descriptor_dims(self) -> int:
        """Dimensions of the stored descriptor; 0 for a model without one."""
        return self.descriptor.dims if self.descriptor is not None else 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def add_descriptor(self, source: str, dims: int) -> Descriptor:
        """Give the net an (unfitted) descriptor of ``source``: a backbone level or ``fc``."""
        if source == "fc":
            width = self.head.fc[3].out_features
        elif source in self.backbone.levels:
            width = self.backbone.levels[source]
        else:
            raise ValueError(f"descriptor source {source!r}: not fc nor a backbone level")
        self.descriptor = Descriptor(source, width, dims).to(self.device)
        return self.descriptor

    def head_features(self, images01: torch.Tensor) -> torch.Tensor:
        """The flat vector the hash head reads (subclasses define it)."""
        return self.features_from_map(self.backbone(images01))

    def features_from_map(self, maps) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.head_features(images01))

    def maps_and_hidden(self, images01: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """The backbone's maps and the hash head's last hidden layer: what the code and
        the descriptor are both computed from."""
        maps = self.backbone(images01)
        return maps, self.head.fc(self.features_from_map(maps))

    def _embed_batch(self, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(r, descriptors or None) of one batch: one backbone pass serves both."""
        maps, hidden = self.maps_and_hidden(images01)
        r = torch.sigmoid(self.head.hash(hidden))
        return r, (self.descriptor(maps, hidden) if self.descriptor is not None else None)

    def encode(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """uint8 RGB (N,H,W,3) crops -> packed codes uint8 (N, ceil(L/8)); bit 1 where r >= 0.5."""
        return self.embed(images, batch_size).codes

    def embed(self, images: np.ndarray, batch_size: int | None = None) -> Embedding:
        """uint8 RGB (N,H,W,3) crops -> codes and descriptors, from one forward pass.

        ``batch_size`` is the forward pass's micro-batch. On CPU the default is 4: the
        stride-2 stages' activations of a batch of 32 (tens of MB per tensor at 112x112)
        fall out of cache, so a batch of 4 runs 2-4x faster and peaks ~350 MB lower
        (measured in docs/RESULTS.md). On GPU it is 64.
        """
        if batch_size is None:
            batch_size = CPU_MICRO_BATCH if self.device.type == "cpu" else GPU_MICRO_BATCH
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return embed_batches(
                    images, batch_size, self.code_bits, self.descriptor_dims, self.floats
                )
        finally:
            self.train(was_training)

    def floats(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One micro-batch of uint8 crops -> (r, descriptors) as float32 numpy: the
        network's float outputs, before thresholding (what runtimes are compared on)."""
        with torch.inference_mode():
            # a read-only array (a decoded frame's view) is copied: torch wants writable memory
            pixels = torch.from_numpy(np.require(images, requirements="W"))
            x = pixels.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            r, desc = self._embed_batch(x)
        return r.float().cpu().numpy(), None if desc is None else desc.float().cpu().numpy()


class _PSPMap(nn.Module):
    """Backbone -> (neck) -> the 28x28 map the PSP reads: shared by phases 1 and 2.

    A single-map backbone's stride-8 map goes straight in (the first shipped models); a
    multi-scale backbone's maps are fused by a :class:`FusionNeck` first.
    """

    backbone: Backbone
    neck: FusionNeck | None

    def _init_map(
        self, backbone: Backbone, neck_levels: dict[str, int] | None, detail: str | None = None
    ) -> int:
        self.backbone = backbone
        self.detail_level = detail
        if detail is not None and detail not in backbone.levels:
            raise ValueError(f"detail level {detail!r} is not one of {sorted(backbone.levels)}")
        if backbone.multi_scale and not neck_levels:
            raise ValueError(f"{backbone.name} returns several maps: give neck_levels")
        self.neck = FusionNeck(neck_levels, backbone.levels) if neck_levels else None
        return self.neck.out_channels if self.neck is not None else backbone.out_channels

    def psp_input(self, backbone_out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """What the backbone returned -> the PSP's 28x28 input map."""
        return self.neck(backbone_out) if self.neck is not None else backbone_out

    def _detail_map(self, backbone_out) -> torch.Tensor | None:
        return backbone_out[self.detail_level] if self.detail_level else None

    def _seg_head(self, decoder_channels: int, num_classes: int) -> SegmentationHead:
        detail = self.backbone.levels[self.detail_level] if self.detail_level else 0
        return SegmentationHead(decoder_channels, num_classes, detail)


class PSPSegNet(_PSPMap):
    """Phase 1: backbone -> (neck) -> PSPDecoder -> SegmentationHead (log-probs)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        decoder_channels: int,
        neck_levels: dict[str, int] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__()
        channels = self._init_map(backbone, neck_levels, detail)
        self.decoder = PSPDecoder(channels, decoder_channels)
        self.seg_head = self._seg_head(decoder_channels, num_classes)

    def forward_from_features(self, maps, size: tuple[int, int]) -> torch.Tensor:
        """Backbone output (cached during training) -> per-pixel log-probabilities."""
        _, fused = self.decoder(self.psp_input(maps))
        return self.seg_head(fused, size, self._detail_map(maps))

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        return self.forward_from_features(self.backbone(images01), images01.shape[-2:])


class PSPHashNet(HashNet, _PSPMap):
    """Phase 2, proposed: backbone -> (neck) -> PSP (softmax removed) -> pooled
    ``head_input`` -> head."""

    def __init__(
        self,
        backbone: Backbone,
        num_seg_classes: int,
        decoder_channels: int,
        code_bits: int,
        num_classes: int,
        width: int = 4096,
        head_input: str = "stacked",
        pool: int = 4,
        neck_levels: dict[str, int] | None = None,
        detail: str | None = None,
        levels: list[str] | None = None,
    ) -> None:
        super().__init__()
        if head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input must be one of {HEAD_INPUTS}, got {head_input!r}")
        channels = self._init_map(backbone, neck_levels, detail)
        self.decoder = PSPDecoder(channels, decoder_channels)
        self.seg_head = self._seg_head(decoder_channels, num_seg_classes)
        self.head_input = head_input
        self.pool = pool
        channels = {
            "scores": num_seg_classes,
            "stacked": self.decoder.stacked_channels,
            "both": num_seg_classes + self.decoder.stacked_channels,
        }[head_input]
        # Backbone levels read beside the PSP (skip connections): the baseline's own input,
        # so the proposed net differs from its twin only by what the PSP adds.
        self.levels = list(levels or [])
        channels += _level_channels(backbone, self.levels)
        self.head = HashHead(channels * pool * pool, code_bits, num_classes, width)

    def features_from_map(self, maps) -> torch.Tensor:
        """Backbone output -> the pooled PSP outputs the head reads (flat), then the pooled
        ``levels`` read beside them.

        With ``head_input="stacked"`` the fusion conv and classifier are not run: they
        serve segmentation only.
        """
        fmap = self.psp_input(maps)
        if self.head_input == "stacked":
            grid = self.decoder.stack(fmap)
        else:
            stacked, fused = self.decoder(fmap)
            scores = self.seg_head.scores(fused, self._detail_map(maps))
            if scores.shape[-2:] != stacked.shape[-2:]:
                scores = F.adaptive_avg_pool2d(scores, stacked.shape[-2:])
            grid = scores if self.head_input == "scores" else torch.cat([scores, stacked], 1)
        return _pool_flat([grid, *(maps[name] for name in self.levels)], self.pool)

    def segment(self, images01: torch.Tensor) -> torch.Tensor:
        """Per-pixel log-probabilities of the PSP's segmentation classes."""
        maps = self.backbone(images01)
        _, fused = self.decoder(self.psp_input(maps))
        return self.seg_head(fused, images01.shape[-2:], self._detail_map(maps))


class BaselineHashNet(HashNet):
    """Phase 2, DLBHC baseline: backbone -> the same adaptive pool -> the same head.

    With a multi-scale backbone it reads the same levels the proposed net's neck fuses
    (``levels``), raw and each pooled to ``pool x pool``: the same backbone knowledge,
    without anything trained on segmentation masks.
    """

    def __init__(
        self,
        backbone: Backbone,
        code_bits: int,
        num_classes: int,
        width: int = 4096,
        pool: int = 4,
        levels: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        if backbone.multi_scale and not levels:
            raise ValueError(f"{backbone.name} returns several maps: name the levels to read")
        self.levels = list(levels or [])
        channels = _level_channels(backbone, self.levels) if self.levels else backbone.out_channels
        self.head = HashHead(channels * pool * pool, code_bits, num_classes, width)

    def features_from_map(self, maps) -> torch.Tensor:
        grids = [maps[name] for name in self.levels] if self.levels else [maps]
        return _pool_flat(grids, self.pool)
