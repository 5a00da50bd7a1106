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
per-source bit balance (Adam, batch 256). Recipe values not given come from
:data:`RECIPES`.

**What runs each epoch** depends on what is frozen:

* backbone and PSP frozen (or the baseline): the head's input and the teacher's features
  are computed once per view and cached on disk (``vidhash.train.cache``), so an epoch is
  only the FC stack;
* backbone frozen, PSP trained: the backbone's maps are cached;
* nothing frozen: full forward passes (the GPU setting; AMP on CUDA); the teacher is the
  backbone as it was before training, its features cached once.

At the end the run reports test accuracy and Hamming-ranking mAP@topk / mAP@all with the
test images as queries and the first training root as the database (the DLBHC protocol),
and stores them in the checkpoint header, with where every weight came from.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidhash.errors import UsageError
from vidhash.models.checkpoint import save_checkpoint
from vidhash.models.nets import CODE_LENGTHS, HashNet, PSPHashNet
from vidhash.train.cache import cached_outputs, chunk_fingerprints, state_digest
from vidhash.train.datasets import Views
from vidhash.train.hashdata import TrainingSet, build_hash_model, frozen_modules, teacher_features
from vidhash.train.itq import fit_itq
from vidhash.train.loop import (
    autocast,
    load_resume_state,
    make_optimizer,
    resolve_device,
    save_resume_state,
    seed_everything,
    step_lr,
)
from vidhash.train.objectives import OBJECTIVES, HashObjective
from vidhash.train.retrieval import database_keys, retrieval_map

# Recipe values per objective, used where the config leaves them None.
RECIPES: dict[str, dict] = {
    "paper": {"optimizer": "sgd", "lr": 1e-3, "lr_after": 1e-4, "drop_after": 20,
              "epochs": 30, "batch_size": 96, "weight_decay": 5e-4},
    "distill": {"optimizer": "adam", "lr": 1e-3, "lr_after": 1e-4, "drop_after": 30,
                "epochs": 40, "batch_size": 256, "weight_decay": 1e-5},
}  # fmt: skip


@dataclass
class HashConfig:
    """Everything a train-hash run depends on (recorded in the checkpoint header)."""

    train_dir: str | list[str]
    test_dir: str | None
    out: str
    arch: str = "psp"
    bits: int = 48
    seg_checkpoint: str | None = None
    backbone: str = "efficientnet_lite0_ms"
    backbone_weights: str = "default"
    levels: str = ""  # backbone levels the head reads (baseline: "" = the neck's; psp: beside it)
    width: int = 4096
    head_input: str = "stacked"
    pool: int = 4
    objective: str = "distill"
    init: str = "random"  # or "itq": the head starts as the PCA-ITQ code of its input
    unlabelled: list[str] = field(default_factory=list)
    unlabelled_every: float = 1.0
    views: int = 1
    teacher: str = "s32"
    # The objective's weights and temperatures: its own defaults, defined once there.
    w_cls: float = HashObjective.w_cls
    w_sim: float = HashObjective.w_sim
    w_quant: float = HashObjective.w_quant
    w_balance: float = HashObjective.w_balance
    tau_teacher: float = HashObjective.tau_teacher
    tau_student: float = HashObjective.tau_student
    optimizer: str | None = None
    epochs: int | None = None
    lr: float | None = None
    lr_after: float | None = None
    drop_after: int | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    batch_size: int | None = None
    freeze_backbone: bool = True
    freeze_psp: bool = True
    device: str = "auto"
    seed: int = 0
    cache_dir: str = "~/.cache/vidhash/features"
    resume: bool = False
    train_per_class: int | None = None
    test_per_class: int | None = None
    topk: int = 1000
    store_dtype: str = "float32"
    size: int = 224

    def resolved(self) -> HashConfig:
        """A copy with the objective's recipe filled in and the options checked."""
        if self.objective not in OBJECTIVES:
            raise UsageError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        cfg = copy.copy(self)
        cfg.train_dir = [cfg.train_dir] if isinstance(cfg.train_dir, str) else list(cfg.train_dir)
        for key, value in RECIPES[cfg.objective].items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if cfg.bits not in CODE_LENGTHS:
            raise UsageError(f"bits must be one of {CODE_LENGTHS}")
        if cfg.arch == "psp" and cfg.freeze_psp and not cfg.freeze_backbone:
            raise UsageError("a frozen PSP needs a frozen backbone (the PSP reads its maps)")
        if cfg.optimizer not in ("sgd", "adam"):
            raise UsageError(f"optimizer must be sgd or adam, got {cfg.optimizer!r}")
        for name in ("epochs", "batch_size", "width", "views"):
            if getattr(cfg, name) < 1:
                raise UsageError(f"{name.replace('_', ' ')} must be positive")
        if cfg.init not in ("random", "itq"):
            raise UsageError(f"init must be random or itq, got {cfg.init!r}")
        if cfg.init == "itq" and not (cfg.freeze_backbone and cfg.freeze_psp):
            raise UsageError("init itq fits the head's input: it needs a frozen backbone and PSP")
        if cfg.unlabelled and cfg.objective == "paper":
            raise UsageError("unlabelled images need the distill objective (paper: labels only)")
        return cfg

    def loss(self) -> HashObjective:
        return HashObjective(self.objective, self.w_cls, self.w_sim, self.w_quant,
                             self.w_balance, self.tau_teacher, self.tau_student)  # fmt: skip


def train_hashing(config: HashConfig, log=print) -> dict:
    """Train the hash head; returns metrics (also written into the checkpoint header)."""
    cfg = config.resolved()
    objective = cfg.loss()
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    data = TrainingSet.open(cfg, log)
    model, info = build_hash_model(cfg, len(data.classes))
    teacher_levels = [t for t in cfg.teacher.split(",") if t]
    out = Path(cfg.out).expanduser()
    resume_path = out.with_name(out.name + ".resume")
    if cfg.resume and out.is_file():
        from vidhash.models.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(out)[0].state_dict())
    model.to(device)
    for module in frozen_modules(model, cfg):
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    start_epoch, history = 0, []
    if cfg.resume and resume_path.is_file():
        start_epoch, history = load_resume_state(resume_path, opt, model)
        log(f"resuming after epoch {start_epoch}")

    t0 = time.time()
    views = Views(data, cfg.views, cfg.seed, cfg.size)
    stage, cached = _cache(model, cfg, views, data, teacher_levels, objective, device, info)
    test_cached = None
    if data.test is not None:
        test_cached = _cache(model, cfg, data.test, data, [], None, device, info, "test")[1]
    cache_seconds = round(time.time() - t0, 1)
    if cfg.init == "itq" and start_epoch == 0:
        _init_itq(model, cached["input"], cfg.bits, log)
    labels = torch.from_numpy(np.repeat(data.labels, cfg.views)).to(device)
    domains = torch.from_numpy(np.repeat(data.domains, cfg.views)).to(device)

    def inputs(arrays, ds, idx: np.ndarray):
        if stage == "image":
            imgs = np.stack([ds[int(i)][0] for i in idx])
            return torch.from_numpy(imgs).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        return _rows(arrays["input"], idx, device)

    def forward(x) -> tuple[torch.Tensor, torch.Tensor]:
        if stage == "head":
            return model.head(x)
        if stage == "map":
            return model.head(model.features_from_map(x))
        return model(x)

    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    metrics: dict = {}
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        lr = step_lr(epoch, cfg.lr, cfg.drop_after, cfg.lr_after)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        for module in frozen_modules(model, cfg):
            module.eval()
        started, totals, count = time.time(), {}, 0
        order = torch.randperm(len(views), generator=gen).numpy()
        for start in tqdm(range(0, len(order), cfg.batch_size), f"epoch {epoch}", leave=False):
            idx = np.sort(order[start : start + cfg.batch_size])
            if len(idx) < 2:  # BatchNorm cannot train on a single sample
                continue
            x = inputs(cached, views, idx)
            teacher = _rows(cached["teacher"], idx, device) if "teacher" in cached else None
            with autocast(device):
                r, logits = forward(x)
            loss, parts = objective(r, logits, labels[idx], teacher, domains[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            count += len(idx)
        entry = {"epoch": epoch, "lr": lr}
        entry |= {f"train_{k}": round(v / max(count, 1), 4) for k, v in totals.items()}
        entry["epoch_seconds"] = round(time.time() - started, 2)
        if epoch == cfg.epochs and data.test is not None:
            metrics = _evaluate(forward, inputs, cached, test_cached, views, data, cfg.topk, model)
            entry.update(metrics)
        history.append(entry)
        log(json.dumps(entry))
        header = hash_header(model, cfg, info, data, history, metrics, cache_seconds)
        dtype = torch.float16 if cfg.store_dtype == "float16" else None
        save_checkpoint(model, out, header, dtype=dtype)
        save_resume_state(resume_path, opt, model, epoch, history)
    return metrics


# Multi-scale maps every run caches (s4 is skipped: large, and nothing reads it), so the
# proposed net, its baseline and the teacher all read one cache of the backbone.
CACHED_LEVELS = ("s8", "s16", "s32", "head")


def _cache(model, cfg, ds, data, teacher_levels, objective, device, info, split="train"):
    """(stage, arrays): what each step starts from, computed once per view.

    The frozen backbone's maps are cached on disk, keyed by the backbone alone, so the
    proposed net, the baseline and later runs share them. From them: ``head``: the head's
    input and the teacher's features (in memory); ``map``: the maps themselves as "input";
    ``image`` (the backbone trains): only the teacher, from the backbone as it was.
    """
    needs_teacher = objective is not None and objective.needs_teacher
    head_only = not isinstance(model, PSPHashNet) or cfg.freeze_psp
    stage = ("head" if head_only else "map") if cfg.freeze_backbone else "image"
    if stage == "image" and not needs_teacher:
        return stage, {}
    backbone = model.backbone if stage != "image" else copy.deepcopy(model.backbone)
    detail = getattr(model, "detail_level", None) if cfg.head_input != "stacked" else None
    maps = _backbone_maps(backbone, cfg, ds, data, device, info, split, detail)
    model.eval()
    arrays: dict = {}
    if stage == "head":
        arrays["input"] = _derive(maps, model.features_from_map, device, f"head input {split}")
    elif stage == "map":
        arrays["input"] = maps
    if needs_teacher:
        arrays["teacher"] = _derive(
            maps, lambda m: teacher_features(m, teacher_levels), device, f"teacher {split}"
        )
    return stage, arrays


def _init_itq(model: HashNet, inputs: np.ndarray, bits: int, log) -> None:
    """Fit PCA-ITQ on the head's inputs (every view, no labels) and start the head as it."""
    fitted = fit_itq(inputs, bits)
    projected = (inputs - fitted.mean) @ fitted.projection
    scale = 3.0 / max(float(np.median(np.abs(projected))), 1e-6)
    model.head.init_linear_code(fitted.mean, fitted.projection, scale)
    log(json.dumps({"init": "itq", "rows": len(inputs), "scale": round(scale, 3)}))


def _backbone_maps(backbone, cfg, ds, data, device, info, split, detail=None):
    """The frozen backbone's maps of every row of ``ds`` (views included), cached on disk
    (plus the segmentation head's detail level when the head reads class scores)."""
    levels = [k for k in (*CACHED_LEVELS, detail) if k and k in backbone.levels]

    def compute(x: torch.Tensor):
        out = backbone(x)
        return {k: out[k] for k in levels} if levels else out

    backbone.eval()
    n_views = getattr(ds, "n_views", 1)
    parts = {"stage": "backbone", "backbone": info["name"], "weights": state_digest(backbone),
             "levels": levels, "size": cfg.size, "views": n_views, "seed": cfg.seed}  # fmt: skip
    keys = data.keys() if split == "train" else [str(f) for f in data.test.files]
    return cached_outputs(
        compute, ds, parts, Path(cfg.cache_dir).expanduser(), None, str(device),
        desc=f"backbone {split}",
        chunk_keys=chunk_fingerprints([k for k in keys for _ in range(n_views)]),
    )  # fmt: skip


def _derive(maps, fn, device: torch.device, desc: str, batch: int = 256) -> np.ndarray:
    """``fn`` (frozen modules) over cached maps, batch by batch: a float32 array in memory."""
    first = maps[next(iter(maps))] if isinstance(maps, dict) else maps
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(first), batch), desc=desc, leave=False):
            rows = np.arange(start, min(start + batch, len(first)))
            out.append(fn(_rows(maps, rows, device)).float().cpu().numpy())
    return np.concatenate(out)


def _rows(array, idx: np.ndarray, device: torch.device):
    """Cached rows as float32 tensors: one array or a dict of them (multi-scale maps)."""
    if isinstance(array, dict):
        return {k: _rows(v, idx, device) for k, v in array.items()}
    return torch.from_numpy(np.asarray(array[idx], np.float32)).to(device)


def _evaluate(forward, inputs, cached, test_cached, views, data, topk, model) -> dict:
    """Test accuracy, mAP@topk and mAP@all (queries: test; database: the first training
    root's center crops, view 0)."""
    model.eval()
    database = np.flatnonzero(data.domains == 0) * views.n_views
    splits = {"train": (cached, views, database),
              "test": (test_cached, data.test, np.arange(len(data.test)))}  # fmt: skip
    bits, preds = {}, {}
    with torch.inference_mode():
        for split, (arrays, ds, rows) in splits.items():
            rs, ps = [], []
            for start in range(0, len(rows), 256):
                r, logits = forward(inputs(arrays, ds, rows[start : start + 256]))
                rs.append((r.float() >= 0.5).cpu().numpy())
                ps.append(logits.argmax(1).cpu().numpy())
            bits[split], preds[split] = np.concatenate(rs), np.concatenate(ps)
    test_labels = np.asarray(data.test.targets)
    db_labels = data.labels[database // views.n_views]
    keys = database_keys(data.sources[0].files, data.sources[0].root)  # rows of domain 0
    q, db = (bits["test"], test_labels), (bits["train"], db_labels, keys)
    return {
        "test_acc": round(float((preds["test"] == test_labels).mean()), 4),
        f"map@{topk}": round(retrieval_map(*q, *db, topk=topk), 4),
        "map@all": round(retrieval_map(*q, *db, topk=None), 4),
        "queries": int(len(test_labels)),
        "database": int(len(database)),
    }


def hash_header(model, cfg, info, data, history, metrics, cache_seconds) -> dict:
    """The checkpoint header: architecture, classes, recipe, metrics and provenance."""
    head = {"width": cfg.width, "pool": cfg.pool}
    backbone_meta = model.backbone.weights_info.meta
    header = {
        "arch": cfg.arch,
        "name": Path(cfg.out).stem,
        "backbone": {
            "name": info["name"],
            "out_channels": model.backbone.out_channels,
            "levels": model.backbone.levels,
            **backbone_meta,
        },  # fmt: skip
        "classes": list(data.classes),
        "code_bits": cfg.bits,
        "preprocessing": model.backbone.weights_info.transforms(),
        "head": head,
        "train": {**asdict(cfg), "history": history, "cache_seconds": cache_seconds},
        "data": data.describe(),
        "metrics": metrics,
        "provenance": {
            "backbone": f"{backbone_meta.get('source')} (frozen)"
            if cfg.freeze_backbone
            else f"{backbone_meta.get('source')}, fine-tuned by train-hash on the data below",
            "hash head": f"train-hash, objective {cfg.objective}, on the data below",
        },
    }
    if isinstance(model, PSPHashNet):
        seg = info["seg_header"]
        head.update(input=cfg.head_input, decoder_channels=seg["head"]["decoder_channels"],
                    neck=seg["head"].get("neck"), detail=seg["head"].get("detail"))  # fmt: skip
        header["seg_classes"] = seg["seg_classes"]
        header["segmentation"] = {
            "checkpoint": str(cfg.seg_checkpoint),
            "data": seg.get("train", {}).get("data"),
            "metrics": {k: seg["metrics"].get(k) for k in ("miou", "pixel_acc")},
        }
        header["provenance"]["neck + PSP"] = (
            f"train-seg on {', '.join(map(str, seg.get('train', {}).get('data', [])))}"
            + (" (frozen here)" if cfg.freeze_psp else ", then fine-tuned by train-hash")
        )
    head["levels"] = model.levels or None
    return header
