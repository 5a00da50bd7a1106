"""Phase 2: train the hash head (``vidhash train-hash``), proposed PSP or DLBHC baseline.

Both architectures use the same data, head, pooling, objective and schedule; only the
head's input differs (PSP outputs vs the backbone's maps).

**Data.** Labelled ImageFolder roots (``train_dir``, one or several: several are one
label space with ``<root>/<class>`` names) and, for the ``distill`` objective, unlabelled
pools of real photos and video frames (``unlabelled``, :mod:`vidhash.train.pool`). Every
image gives ``views`` crops (:class:`vidhash.train.datasets.Views`: the center crop plus
random scale crops and mirrors).

**Objective** (:mod:`vidhash.train.objectives`): ``paper`` is the paper's point-wise
recipe, unchanged (SGD, batch 96, softmax cross-entropy); ``distill`` (the default) adds
neighbourhood distillation of the frozen backbone's own similarities, quantisation and
per-source bit balance (Adam, batch 256). A schedule not given is the objective's
:data:`~vidhash.train.config.RECIPES` entry.

**What runs each epoch** depends on what is frozen (:class:`HashPhase`):

* backbone and PSP frozen (or the baseline): the head's input and the teacher's features
  are computed once per view and cached on disk (``vidhash.train.cache``), so an epoch is
  only the FC stack;
* backbone frozen, PSP trained: the backbone's maps are cached;
* nothing frozen: full forward passes (the GPU setting; AMP on CUDA); the teacher is the
  backbone as it was before training, its features cached once.

The epochs, checkpoints and resuming are the :class:`~vidhash.train.loop.Trainer`'s. At the
end the run reports test accuracy and Hamming-ranking mAP@topk / mAP@all with the test
images as queries and the first training root as the database (the DLBHC protocol), and
stores them in the checkpoint header, with where every weight came from. The header's
``train`` record is the run's options, flat, in :data:`RECORD` order (as 0.2.0 wrote it).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidhash.models.nets import HashNet, PSPHashNet
from vidhash.train.cache import Cached, Rows, backbone_maps, rows
from vidhash.train.config import (
    RECIPES,
    HashData,
    HashHead,
    Runtime,
    Schedule,
    check,
    flat,
    option_names,
    ordered,
    take,
)
from vidhash.train.datasets import ImageFolderSet, Views
from vidhash.train.hashdata import TrainingSet, build_hash_model, frozen_modules, teacher_features
from vidhash.train.itq import fit_itq
from vidhash.train.loop import Checkpoints, Log, Trainer, start
from vidhash.train.objectives import HashObjective
from vidhash.train.retrieval import database_keys, retrieval_map

__all__ = ["HashConfig", "HashPhase", "frozen_modules", "train_hashing"]

STORE_DTYPES = ("float32", "float16")
# The header's ``train`` record: every option, in the order 0.2.0 wrote them.
RECORD = (
    "train_dir", "test_dir", "out", "arch", "bits", "seg_checkpoint", "backbone",
    "backbone_weights", "levels", "width", "head_input", "pool", "objective", "init",
    "unlabelled", "unlabelled_every", "views", "teacher", "w_cls", "w_sim", "w_quant",
    "w_balance", "tau_teacher", "tau_student", "optimizer", "epochs", "lr", "lr_after",
    "drop_after", "momentum", "weight_decay", "batch_size", "freeze_backbone", "freeze_psp",
    "device", "seed", "cache_dir", "resume", "train_per_class", "test_per_class", "topk",
    "store_dtype", "size",
)  # fmt: skip
# Multi-scale maps every run caches (s4 is skipped: large, and nothing reads it), so the
# proposed net, its baseline and the teacher all read one cache of the backbone.
CACHED_LEVELS = ("s8", "s16", "s32", "head")


@dataclass(frozen=True, kw_only=True)
class HashConfig:
    """A train-hash run: its parts (:mod:`vidhash.train.config`), where it writes, the
    report's ``topk`` and the stored precision. ``schedule=None``: the objective's recipe."""

    out: str
    data: HashData
    head: HashHead
    objective: HashObjective = field(default_factory=HashObjective)
    schedule: Schedule | None = None
    runtime: Runtime = field(default_factory=Runtime)
    resume: bool = False
    topk: int = 1000
    store_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.schedule is None:
            object.__setattr__(self, "schedule", RECIPES[self.objective.name])
        check(
            not (self.data.unlabelled and self.objective.name == "paper"),
            "unlabelled images need the distill objective (paper: labels only)",
        )
        check(
            self.store_dtype in STORE_DTYPES,
            f"store_dtype must be one of {STORE_DTYPES}, got {self.store_dtype!r}",
        )
        check(self.topk >= 1, "topk must be positive")

    @classmethod
    def from_options(cls, **options) -> HashConfig:
        """A run from flat options (the CLI's; a header's ``train`` record): each part takes
        its own; schedule options left None take the objective's recipe."""
        options = dict(options)
        objective = take(HashObjective, options)
        given = {k: options.pop(k) for k in option_names(Schedule).values() if k in options}
        recipe = RECIPES[objective.name]
        schedule = replace(recipe, **{k: v for k, v in given.items() if v is not None})
        return cls(
            data=take(HashData, options),
            head=take(HashHead, options),
            objective=objective,
            schedule=schedule,
            runtime=take(Runtime, options),
            **options,
        )

    def record(self) -> dict:
        """The header's ``train`` record (``threads`` only when set: 0.2.0 had none)."""
        parts = (self.data, self.head, self.objective, self.schedule, self.runtime)
        values = {
            **flat(*parts),
            "out": self.out,
            "resume": self.resume,
            "topk": self.topk,
            "store_dtype": self.store_dtype,
        }
        threads = values.pop("threads")
        return ordered(values, RECORD) | ({"threads": threads} if threads is not None else {})


def train_hashing(cfg: HashConfig, log: Log = print) -> dict:
    """Train the hash head; returns metrics (also written into the checkpoint header)."""
    device, generator = start(cfg.runtime)
    data = TrainingSet.open(cfg.data, log)
    model, info = build_hash_model(cfg.head, len(data.classes))
    frozen = frozen_modules(model, cfg.head.freeze_backbone, cfg.head.freeze_psp)
    dtype = torch.float16 if cfg.store_dtype == "float16" else None
    saves = Checkpoints(Path(cfg.out).expanduser(), cfg.resume, dtype)
    trainer = Trainer(model, frozen, cfg.schedule, device, generator, saves, log)
    phase = HashPhase(cfg, model, info, data, device, log)
    if cfg.head.init == "itq" and trainer.start_epoch == 0:
        init_itq(model, phase.cached["input"], cfg.head.bits, log)
    return trainer.fit(phase)


def init_itq(model: HashNet, inputs: np.ndarray, bits: int, log: Log = print) -> None:
    """Fit PCA-ITQ on the head's inputs (every view, no labels) and start the head as it."""
    fitted = fit_itq(inputs, bits)
    projected = (inputs - fitted.mean) @ fitted.projection
    scale = 3.0 / max(float(np.median(np.abs(projected))), 1e-6)
    model.head.init_linear_code(fitted.mean, fitted.projection, scale)
    log(json.dumps({"init": "itq", "rows": len(inputs), "scale": round(scale, 3)}))


class HashPhase:
    """Phase 2's part of the :class:`~vidhash.train.loop.Trainer` loop: batches of cached
    head inputs (``stage`` "head"), cached backbone maps ("map") or images ("image"), the
    hash objective, the DLBHC report after the last epoch, and the header."""

    def __init__(
        self,
        cfg: HashConfig,
        model: HashNet,
        info: dict,
        data: TrainingSet,
        device: torch.device,
        log: Log = print,
    ) -> None:
        self.cfg, self.model, self.info, self.data, self.device = cfg, model, info, data, device
        self.log = log
        self.views = Views(data, cfg.data.views, cfg.runtime.seed, cfg.data.size)
        self.items = len(self.views)
        head_only = not isinstance(model, PSPHashNet) or cfg.head.freeze_psp
        self.stage = ("head" if head_only else "map") if cfg.head.freeze_backbone else "image"
        started = time.time()
        self.cached = self._cache(self.views, "train", cfg.objective.needs_teacher)
        self.test_cached = None if data.test is None else self._cache(data.test, "test", False)
        self.cache_seconds = round(time.time() - started, 1)
        self.labels = torch.from_numpy(np.repeat(data.labels, cfg.data.views)).to(device)
        self.domains = torch.from_numpy(np.repeat(data.domains, cfg.data.views)).to(device)

    def _cache(self, ds: Views | ImageFolderSet, split: str, teacher: bool) -> dict:
        """What each step starts from, computed once per view: the frozen backbone's maps
        (on disk, :func:`~vidhash.train.cache.backbone_maps`), and from them the head's
        input ("head", in memory) or the maps themselves ("map"), and the teacher's
        features; "image" (the backbone trains): only the teacher, from the backbone as
        it is now."""
        if self.stage == "image" and not teacher:
            return {}
        model, device, head = self.model, self.device, self.cfg.head
        backbone = model.backbone if self.stage != "image" else copy.deepcopy(model.backbone)
        detail = getattr(model, "detail_level", None) if head.head_input != "stacked" else None
        levels = [k for k in (*CACHED_LEVELS, detail) if k and k in backbone.levels]
        keys = self.data.keys() if split == "train" else [str(f) for f in self.data.test.files]
        data = self.cfg.data
        maps = backbone_maps(
            backbone,
            self.info["name"],
            ds,
            keys,
            levels,
            size=data.size,
            seed=self.cfg.runtime.seed,
            cache_dir=data.cache_dir,
            device=device,
            desc=f"backbone {split}",
        )
        model.eval()
        arrays: dict = {}
        if self.stage == "head":
            arrays["input"] = _derive(maps, model.features_from_map, device, f"head input {split}")
        elif self.stage == "map":
            arrays["input"] = maps
        if teacher:
            levels = self.cfg.objective.teacher_levels
            arrays["teacher"] = _derive(
                maps, lambda m: teacher_features(m, levels), device, f"teacher {split}"
            )
        return arrays

    def _inputs(self, arrays: dict, ds: Views | ImageFolderSet, idx: np.ndarray) -> Rows:
        if self.stage == "image":
            imgs = np.stack([ds[int(i)][0] for i in idx])
            return torch.from_numpy(imgs).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        return rows(arrays["input"], idx, self.device)

    def _forward(self, x: Rows) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stage == "head":
            return self.model.head(x)
        if self.stage == "map":
            return self.model.head(self.model.features_from_map(x))
        return self.model(x)

    def batch(self, idx: np.ndarray) -> tuple:
        x = self._inputs(self.cached, self.views, idx)
        teacher = self.cached.get("teacher")
        teacher = None if teacher is None else rows(teacher, idx, self.device)
        return x, teacher, self.labels[idx], self.domains[idx]

    def forward(self, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        return self._forward(batch[0])

    def loss(self, out: tuple, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        (r, logits), (_, teacher, labels, domains) = out, batch
        return self.cfg.objective(r, logits, labels, teacher, domains)

    def end_epoch(self, summary: dict, last: bool) -> tuple[dict, dict]:
        metrics = self.evaluate() if last and self.data.test is not None else {}
        entry = {**summary, **metrics}
        self.log(json.dumps(entry))
        return entry, metrics

    def evaluate(self) -> dict:
        """Test accuracy, mAP@topk and mAP@all (queries: test; database: the first
        training root's center crops, view 0)."""
        self.model.eval()
        data, n_views, topk = self.data, self.views.n_views, self.cfg.topk
        database = np.flatnonzero(data.domains == 0) * n_views
        splits = {
            "train": (self.cached, self.views, database),
            "test": (self.test_cached, data.test, np.arange(len(data.test))),
        }
        bits, preds = {}, {}
        with torch.inference_mode():
            for split, (arrays, ds, which) in splits.items():
                rs, ps = [], []
                for begin in range(0, len(which), 256):
                    r, logits = self._forward(self._inputs(arrays, ds, which[begin : begin + 256]))
                    rs.append((r.float() >= 0.5).cpu().numpy())
                    ps.append(logits.argmax(1).cpu().numpy())
                bits[split], preds[split] = np.concatenate(rs), np.concatenate(ps)
        test_labels = np.asarray(data.test.targets)
        db_labels = data.labels[database // n_views]
        keys = database_keys(data.sources[0].files, data.sources[0].root)  # rows of domain 0
        q, db = (bits["test"], test_labels), (bits["train"], db_labels, keys)
        return {
            "test_acc": round(float((preds["test"] == test_labels).mean()), 4),
            f"map@{topk}": round(retrieval_map(*q, *db, topk=topk), 4),
            "map@all": round(retrieval_map(*q, *db, topk=None), 4),
            "queries": int(len(test_labels)),
            "database": int(len(database)),
        }

    def header(self, history: list[dict], metrics: dict) -> dict:
        """The checkpoint header: architecture, classes, recipe, metrics and provenance."""
        cfg, model, head_cfg = self.cfg, self.model, self.cfg.head
        head = {"width": head_cfg.width, "pool": head_cfg.pool}
        backbone_meta = model.backbone.weights_info.meta
        source = backbone_meta.get("source")
        header = {
            "arch": head_cfg.arch,
            "name": Path(cfg.out).stem,
            "backbone": {
                "name": self.info["name"],
                "out_channels": model.backbone.out_channels,
                "levels": model.backbone.levels,
                **backbone_meta,
            },
            "classes": list(self.data.classes),
            "code_bits": head_cfg.bits,
            "preprocessing": model.backbone.weights_info.transforms(),
            "head": head,
            "train": {**cfg.record(), "history": history, "cache_seconds": self.cache_seconds},
            "data": self.data.describe(),
            "metrics": metrics,
            "provenance": {
                "backbone": f"{source} (frozen)"
                if head_cfg.freeze_backbone
                else f"{source}, fine-tuned by train-hash on the data below",
                "hash head": f"train-hash, objective {cfg.objective.name}, on the data below",
            },
        }
        if isinstance(model, PSPHashNet):
            seg = self.info["seg_header"]
            head.update(
                input=head_cfg.head_input,
                decoder_channels=seg["head"]["decoder_channels"],
                neck=seg["head"].get("neck"),
                detail=seg["head"].get("detail"),
            )
            header["seg_classes"] = seg["seg_classes"]
            seg_data = seg.get("train", {}).get("data")
            header["segmentation"] = {
                "checkpoint": str(head_cfg.seg_checkpoint),
                "data": seg_data,
                "metrics": {k: seg["metrics"].get(k) for k in ("miou", "pixel_acc")},
            }
            header["provenance"]["neck + PSP"] = (
                f"train-seg on {', '.join(map(str, seg_data or []))}"
                + (" (frozen here)" if head_cfg.freeze_psp else ", then fine-tuned by train-hash")
            )
        head["levels"] = model.levels or None
        return header


def _derive(
    maps: Cached,
    fn: Callable[[Rows], torch.Tensor],
    device: torch.device,
    desc: str,
    batch: int = 256,
) -> np.ndarray:
    """``fn`` (frozen modules) over cached maps, batch by batch: a float32 array in memory."""
    first = maps[next(iter(maps))] if isinstance(maps, dict) else maps
    out = []
    with torch.inference_mode():
        for begin in tqdm(range(0, len(first), batch), desc=desc, leave=False):
            which = np.arange(begin, min(begin + batch, len(first)))
            out.append(fn(rows(maps, which, device)).float().cpu().numpy())
    return np.concatenate(out)
