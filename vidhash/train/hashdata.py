"""What a train-hash run reads and builds: its images and labels, the network, the teacher.

:class:`TrainingSet` puts labelled ImageFolder roots and unlabelled pools into one
indexable set with a ``raw(i)`` method (for :class:`~vidhash.train.datasets.Views`), a
label per item (-1 when unlabelled) and a *domain* per item (which source it came from:
the objective balances bits per domain). :func:`build_hash_model` makes the proposed or
baseline net from a train-seg checkpoint or a backbone; :func:`teacher_features` are the
frozen backbone's own pooled features whose similarities the ``distill`` objective keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidhash.errors import UsageError
from vidhash.models.backbones import get_backbone
from vidhash.models.checkpoint import load_checkpoint
from vidhash.models.nets import BaselineHashNet, HashNet, PSPHashNet, PSPSegNet
from vidhash.train.config import HashData, HashHead
from vidhash.train.datasets import ImageFolderSet
from vidhash.train.pool import UnlabelledPool

DEFAULT_LEVELS = ("s8", "s16", "head")


@dataclass
class TrainingSet:
    """Labelled roots then unlabelled pools, as one set; ``test`` is the query set."""

    sources: list  # ImageFolderSet | UnlabelledPool, in order
    names: list[str]
    classes: list[str]
    labels: np.ndarray  # int64, -1 = unlabelled
    domains: np.ndarray  # int64: index into ``sources``
    test: ImageFolderSet | None = None
    _starts: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, data: HashData, log: Callable[[str], None] = print) -> TrainingSet:
        roots = [Path(r) for r in data.train_dir]
        sets = [ImageFolderSet.open(r, data.size, data.train_per_class) for r in roots]
        if len(sets) == 1:
            classes = list(sets[0].classes)
            labels = [np.asarray(sets[0].targets)]
        else:
            classes, labels = [], []
            for root, ds in zip(roots, sets, strict=True):
                labels.append(np.asarray(ds.targets) + len(classes))
                classes += [f"{root.parent.name}/{root.name}/{c}" for c in ds.classes]
        sources: list = list(sets)
        names = [str(r) for r in roots]
        if data.unlabelled:
            pool = UnlabelledPool.open(list(data.unlabelled), data.unlabelled_every,
                                       size=data.size, log=log)  # fmt: skip
            sources.append(pool)
            names.append("unlabelled: " + ", ".join(data.unlabelled))
            labels.append(np.full(len(pool), -1))
        domains = np.concatenate([np.full(len(s), d) for d, s in enumerate(sources)])
        test = None
        if data.test_dir:
            test = ImageFolderSet.open(data.test_dir, data.size, data.test_per_class,
                                       classes=sets[0].classes)  # fmt: skip
        starts = np.cumsum([0] + [len(s) for s in sources]).tolist()
        return cls(sources, names, classes, np.concatenate(labels).astype(np.int64),
                   domains.astype(np.int64), test, starts)  # fmt: skip

    def __len__(self) -> int:
        return self._starts[-1]

    def _locate(self, i: int) -> tuple[int, int]:
        d = int(np.searchsorted(self._starts, i, side="right")) - 1
        return d, i - self._starts[d]

    def raw(self, i: int) -> tuple[np.ndarray, int]:
        d, j = self._locate(i)
        image, _ = self.sources[d].raw(j)
        return image, int(self.labels[i])

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        d, j = self._locate(i)
        image, _ = self.sources[d][j]
        return image, int(self.labels[i])

    def keys(self) -> list[str]:
        """One stable key per item (a file path, or a video frame's key), for caches."""
        out: list[str] = []
        for source in self.sources:
            out += source.keys() if isinstance(source, UnlabelledPool) else map(str, source.files)
        return out

    def describe(self) -> list[dict]:
        """What the run was trained on (for the checkpoint header and MODELS.md)."""
        return [
            {"source": name, "images": len(s), "labelled": not isinstance(s, UnlabelledPool)}
            for name, s in zip(self.names, self.sources, strict=True)
        ]


def teacher_features(
    maps: torch.Tensor | dict[str, torch.Tensor], levels: list[str]
) -> torch.Tensor:
    """The frozen backbone's pooled features: each level global-average-pooled and
    L2-normalised, concatenated (a single-map backbone: its map, pooled)."""
    if not isinstance(maps, dict):
        return F.normalize(maps.mean((2, 3)), dim=1)
    missing = [name for name in levels if name not in maps]
    if missing or not levels:
        raise UsageError(f"teacher levels {levels} must name backbone levels {sorted(maps)}")
    return torch.cat([F.normalize(maps[name].mean((2, 3)), dim=1) for name in levels], 1)


def build_hash_model(head: HashHead, num_classes: int) -> tuple[HashNet, dict]:
    """The network to train, its backbone and PSP (and neck) from the train-seg checkpoint;
    and what the header records of them: ``{"name": backbone, "seg_header": {...}}``."""
    seg_header: dict = {}
    seg: PSPSegNet | None = None
    if head.seg_checkpoint:
        seg, seg_header = load_checkpoint(head.seg_checkpoint)
        if not isinstance(seg, PSPSegNet):
            raise UsageError(f"{head.seg_checkpoint} is not a train-seg (psp-seg) checkpoint")
    neck_levels = seg_header.get("head", {}).get("neck")
    if head.arch == "psp":
        assert seg is not None  # HashHead: arch psp needs seg_checkpoint
        model = PSPHashNet(
            seg.backbone, len(seg_header["seg_classes"]), seg_header["head"]["decoder_channels"],
            head.bits, num_classes, head.width, head.head_input, head.pool, neck_levels,
            seg_header["head"].get("detail"), head.level_list(),
        )  # fmt: skip
        if seg.neck is not None:
            model.neck.load_state_dict(seg.neck.state_dict())
        model.decoder.load_state_dict(seg.decoder.state_dict())
        model.seg_head.load_state_dict(seg.seg_head.state_dict())
        backbone_name = seg_header["backbone"]["name"]
    else:  # the baseline (HashHead checked the arch and that psp has its checkpoint)
        # The proposed net's backbone when a seg checkpoint is given: a fair comparison.
        backbone = seg.backbone if seg is not None else get_backbone(
            head.backbone, head.backbone_weights)  # fmt: skip
        backbone_name = seg_header["backbone"]["name"] if seg is not None else head.backbone
        levels = None
        if backbone.multi_scale:
            levels = head.level_list() or list(neck_levels or DEFAULT_LEVELS)
        model = BaselineHashNet(backbone, head.bits, num_classes, head.width, head.pool, levels)
    return model, {"name": backbone_name, "seg_header": seg_header}


def frozen_modules(
    model: HashNet, freeze_backbone: bool = True, freeze_psp: bool = True
) -> list[torch.nn.Module]:
    """The modules a run keeps as they are (their outputs can then be cached)."""
    frozen = [model.backbone] if freeze_backbone else []
    if isinstance(model, PSPHashNet) and freeze_psp:
        frozen += [model.decoder, model.seg_head]
        if model.neck is not None:
            frozen.append(model.neck)
    return frozen
