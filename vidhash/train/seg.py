"""Phase 1: train the PSP module on pixel masks (``vidhash train-seg``).

With a frozen backbone (the CPU default) the backbone's maps are computed once per
training view and cached on disk; each epoch then runs only the neck (multi-scale
backbones), the PSP decoder and the segmentation head. Views: ``views`` crops of every
training image (:class:`vidhash.train.datasets.Views`: the center crop plus random scale
crops and mirrors). Class weights (``median-freq``, as SegNet weighs CamVid) keep thin,
rare classes (poles, signs, people) from being ignored.

The epochs, checkpoints (the vidhash format, arch ``psp-seg``, written after every epoch
with the validation metrics in their header) and resuming are the
:class:`~vidhash.train.loop.Trainer`'s; :class:`SegPhase` supplies the batches, the loss
and the validation. The header's ``train`` record is the run's options, flat, in
:data:`RECORD` order (as 0.2.0 wrote it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidhash.errors import UsageError
from vidhash.models.backbones import get_backbone
from vidhash.models.nets import PSPSegNet
from vidhash.models.psp import IGNORE_INDEX
from vidhash.train.cache import Cached, backbone_maps, rows
from vidhash.train.config import Runtime, Schedule, SegData, SegHead, flat, ordered, take
from vidhash.train.datasets import Views, VOCSegmentation, merged_voc
from vidhash.train.loop import Checkpoints, Log, Trainer, start
from vidhash.train.objectives import SegObjective

# The header's ``train`` record: every option, in the order 0.2.0 wrote them.
RECORD = (
    "data", "out", "backbone", "backbone_weights", "neck", "detail", "decoder_channels",
    "epochs", "lr", "lr_after", "drop_after", "momentum", "weight_decay", "batch_size",
    "optimizer", "class_weights", "views", "size", "freeze_backbone", "device", "seed",
    "cache_dir", "resume", "extra",
)  # fmt: skip
PARTS = (
    ("data", SegData),
    ("head", SegHead),
    ("objective", SegObjective),
    ("schedule", Schedule),
    ("runtime", Runtime),
)


@dataclass(frozen=True, kw_only=True)
class SegConfig:
    """A train-seg run: its parts (:mod:`vidhash.train.config`; the schedule's defaults
    are the paper's: SGD m=0.9, lr 1e-3 -> 1e-4 after epoch 20, 30 epochs, batch 32), where
    it writes, and ``extra``: free-form notes recorded in the header."""

    out: str
    data: SegData
    head: SegHead = field(default_factory=SegHead)
    objective: SegObjective = field(default_factory=SegObjective)
    schedule: Schedule = field(default_factory=Schedule)
    runtime: Runtime = field(default_factory=Runtime)
    resume: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_options(cls, **options) -> SegConfig:
        """A run from flat options (the CLI's; a header's ``train`` record)."""
        options = dict(options)
        return cls(**{name: take(part, options) for name, part in PARTS}, **options)

    def record(self) -> dict:
        """The header's ``train`` record (``threads`` only when set: 0.2.0 had none)."""
        values = {
            **flat(*(getattr(self, name) for name, _ in PARTS)),
            "out": self.out,
            "resume": self.resume,
            "extra": self.extra,
        }
        threads = values.pop("threads")
        return ordered(values, RECORD) | ({"threads": threads} if threads is not None else {})


class _Concat:
    """Several VOC sets as one indexable sequence of (image, mask)."""

    def __init__(self, sets: list[VOCSegmentation]) -> None:
        self.sets = sets
        self.index = [(s, i) for s, ds in enumerate(sets) for i in range(len(ds))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        s, i = self.index[k]
        return self.sets[s][i]

    def raw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        s, i = self.index[k]
        return self.sets[s].raw(i)

    def raw_mask(self, k: int) -> np.ndarray:
        s, i = self.index[k]
        return self.sets[s].raw_mask(i)

    def mask(self, k: int) -> np.ndarray:
        s, i = self.index[k]
        return self.sets[s].mask(i)

    def files(self) -> list[Path]:
        return [
            ds.root / "JPEGImages" / f"{ds.ids[i]}.jpg"
            for ds, i in ((self.sets[s], i) for s, i in self.index)
        ]


def confusion(pred: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """n x n confusion matrix (rows = truth) over pixels not labelled 255."""
    keep = target != IGNORE_INDEX
    return np.bincount(target[keep].astype(np.int64) * n + pred[keep], minlength=n * n).reshape(
        n, n
    )


def seg_metrics(conf: np.ndarray, labels: list[str]) -> dict:
    """Pixel accuracy, mIoU over classes present in the ground truth, per-class IoU."""
    tp = np.diag(conf).astype(float)
    gt = conf.sum(1).astype(float)
    union = gt + conf.sum(0) - tp
    present = gt > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    return {
        "pixel_acc": float(tp.sum() / max(conf.sum(), 1)),
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "per_class_iou": {labels[c]: round(float(iou[c]), 4) for c in np.flatnonzero(present)},
    }


def train_segmentation(cfg: SegConfig, log: Log = print) -> dict:
    """Train the PSP module; returns the final validation metrics (also in the checkpoint)."""
    device, generator = start(cfg.runtime)
    train_sets = merged_voc(list(cfg.data.roots), "train", cfg.data.size)
    val_sets = merged_voc(list(cfg.data.roots), "val", cfg.data.size)
    if len(train_sets[0].labels) > 255:
        raise UsageError("more than 255 merged classes cannot be stored in uint8 masks")
    backbone = get_backbone(cfg.head.backbone, cfg.head.backbone_weights)
    neck, detail = cfg.head.layout(backbone.multi_scale)
    model = PSPSegNet(backbone, len(train_sets[0].labels), cfg.head.decoder_channels, neck, detail)
    frozen = [model.backbone] if cfg.head.freeze_backbone else []
    saves = Checkpoints(Path(cfg.out).expanduser(), cfg.resume)
    trainer = Trainer(model, frozen, cfg.schedule, device, generator, saves, log)
    return trainer.fit(SegPhase(cfg, model, train_sets, val_sets, device, log))


class SegPhase:
    """Phase 1's part of the :class:`~vidhash.train.loop.Trainer` loop: batches of cached
    backbone maps (frozen backbone) or images, the (class-weighted) pixel loss, validation
    after every epoch, and the header."""

    def __init__(
        self,
        cfg: SegConfig,
        model: PSPSegNet,
        train_sets: list[VOCSegmentation],
        val_sets: list[VOCSegmentation],
        device: torch.device,
        log: Log = print,
    ) -> None:
        self.cfg, self.model, self.device, self.log = cfg, model, device, log
        self.labels, self.val_sets = train_sets[0].labels, val_sets
        self.sets = {
            "train": Views(_Concat(train_sets), cfg.data.views, cfg.runtime.seed, cfg.data.size),
            "val": _Concat(val_sets),
        }
        self.items = len(self.sets["train"])
        self.masks: dict[str, np.ndarray] = {}
        self.maps: dict = {}
        for split, ds in self.sets.items():
            self.masks[split] = np.stack([ds.mask(i) for i in range(len(ds))])  # no image decoded
            if cfg.head.freeze_backbone:
                self.maps[split] = self._cache(split, ds)
        weights = cfg.objective.weights(self.masks["train"], len(self.labels))
        self.weights = None if weights is None else torch.from_numpy(weights).to(device)

    def _cache(self, split: str, ds: Views | _Concat) -> Cached:
        """The frozen backbone's maps of ``split`` (the levels the neck and the detail
        branch read), computed once and kept on disk: epochs then skip the backbone."""
        neck, detail = self.cfg.head.layout(self.model.backbone.multi_scale)
        levels = list(neck or {}) + ([detail] if detail else [])
        files = ds.dataset.files() if split == "train" else ds.files()
        return backbone_maps(
            self.model.backbone,
            self.cfg.head.backbone,
            ds,
            files,
            levels,
            size=self.cfg.data.size,
            seed=self.cfg.runtime.seed,
            cache_dir=self.cfg.data.cache_dir,
            device=self.device,
            desc=f"backbone {split}",
        )

    def _batch(self, split: str, idx: np.ndarray) -> tuple:
        """(cached maps or images, masks) of rows ``idx`` of ``split``, on the device."""
        y = torch.from_numpy(self.masks[split][idx]).to(self.device)
        if split in self.maps:
            return rows(self.maps[split], idx, self.device), y
        imgs = np.stack([self.sets[split][int(i)][0] for i in idx])
        return torch.from_numpy(imgs).to(self.device).permute(0, 3, 1, 2).float().div_(255.0), y

    def batch(self, idx: np.ndarray) -> tuple:
        return self._batch("train", idx)

    def forward(self, batch: tuple) -> torch.Tensor:
        x = batch[0]
        if self.maps:
            return self.model.forward_from_features(x, (self.cfg.data.size,) * 2)
        return self.model(x)

    def loss(self, out: torch.Tensor, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        return self.cfg.objective(out, batch[1], self.weights), {}

    def end_epoch(self, summary: dict, last: bool) -> tuple[dict, dict]:
        metrics = self.evaluate()
        metrics.update(
            epoch=summary["epoch"],
            train_loss=summary["train_loss"],
            lr=summary["lr"],
            epoch_seconds=summary["epoch_seconds"],
        )
        self.log(json.dumps({k: v for k, v in metrics.items() if k != "per_class_iou"}))
        return {k: metrics[k] for k in ("epoch", "train_loss", "miou", "pixel_acc")}, metrics

    def evaluate(self) -> dict:
        """Confusion over all val pixels; also per data set (e.g. CamVid alone)."""
        n, size = len(self.labels), self.cfg.schedule.batch_size
        self.model.eval()
        conf = np.zeros((n, n), np.int64)
        per_set = [np.zeros((n, n), np.int64) for _ in self.val_sets]
        bounds = np.cumsum([0] + [len(ds) for ds in self.val_sets])
        seen = 0
        with torch.inference_mode():
            for begin in range(0, len(self.sets["val"]), size):
                batch = self._batch("val", np.arange(begin, min(begin + size, bounds[-1])))
                pred = self.forward(batch).argmax(1).cpu().numpy()
                truth = batch[1].cpu().numpy()
                for k in range(len(pred)):
                    c = confusion(pred[k].ravel(), truth[k].ravel(), n)
                    conf += c
                    per_set[int(np.searchsorted(bounds, seen, side="right")) - 1] += c
                    seen += 1
        result = seg_metrics(conf, self.labels)
        result["per_dataset"] = {
            ds.root.name: seg_metrics(c, self.labels)
            for ds, c in zip(self.val_sets, per_set, strict=True)
        }
        return result

    def header(self, history: list[dict], metrics: dict) -> dict:
        """The ``psp-seg`` checkpoint header: what train-hash reads back (classes, neck,
        decoder channels), the run's record and the validation metrics."""
        model, head = self.model, self.cfg.head
        neck, detail = head.layout(model.backbone.multi_scale)
        return {
            "arch": "psp-seg",
            "name": Path(self.cfg.out).stem,
            "backbone": {
                "name": head.backbone,
                "out_channels": model.backbone.out_channels,
                **model.backbone.weights_info.meta,
            },
            "classes": self.labels,
            "seg_classes": self.labels,
            "code_bits": 0,
            "preprocessing": model.backbone.weights_info.transforms(),
            "head": {
                "decoder_channels": head.decoder_channels,
                "bins": list(model.decoder.bins),
                "neck": neck,
                "detail": detail,
            },
            "train": {**self.cfg.record(), "history": history},
            "metrics": metrics,
        }
