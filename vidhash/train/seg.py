"""Phase 1: train the PSP module on pixel masks (``vidhash train-seg``).

With a frozen backbone (the CPU default) the backbone's maps are computed once per
training view and cached on disk; each epoch then runs only the neck (multi-scale
backbones), the PSP decoder and the segmentation head. Views: ``views`` crops of every
training image (:class:`vidhash.train.datasets.Views`: the center crop plus random scale
crops and mirrors). Class weights (``median-freq``, as SegNet weighs CamVid) keep thin,
rare classes (poles, signs, people) from being ignored. Checkpoints (the vidhash format,
arch ``psp-seg``) are written after every epoch with the validation metrics in their
header; ``resume=True`` continues from the last one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidhash.errors import UsageError
from vidhash.models.backbones import get_backbone
from vidhash.models.checkpoint import load_checkpoint, save_checkpoint
from vidhash.models.nets import PSPSegNet
from vidhash.models.psp import IGNORE_INDEX, segmentation_loss
from vidhash.train.cache import backbone_cache_key, cached_outputs, chunk_fingerprints
from vidhash.train.datasets import Views, VOCSegmentation, merged_voc
from vidhash.train.loop import (
    autocast,
    load_resume_state,
    make_optimizer,
    resolve_device,
    save_resume_state,
    seed_everything,
    step_lr,
)

DEFAULT_NECK = "s8:64,s16:128,head:256"
OPTIMIZERS = ("sgd", "adam")
CLASS_WEIGHTS = ("none", "median-freq")


def parse_neck(spec: str) -> dict[str, int] | None:
    """``"s8:64,s16:128,head:256"`` -> {"s8": 64, ...}; ``""`` or ``"none"`` -> None."""
    if spec in ("", "none"):
        return None
    try:
        levels = {name: int(ch) for name, ch in (part.split(":") for part in spec.split(","))}
    except ValueError:
        raise UsageError(f"--neck must look like s8:64,s16:128,head:256, got {spec!r}") from None
    if sum(levels.values()) % 4 or min(levels.values()) < 1:
        raise UsageError(f"--neck channels must be positive and sum to a multiple of 4: {spec}")
    return levels


def median_frequency_weights(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """SegNet's class balancing: median(freq) / freq(c), where freq(c) is c's pixel share
    in the images that contain c; classes absent from ``masks`` get weight 0."""
    counts = np.zeros(n_classes)
    present_in = np.zeros(n_classes)
    for mask in masks:
        c = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
        counts += c
        present_in += (c > 0) * mask.size
    seen = counts > 0
    freq = np.divide(counts, present_in, out=np.zeros(n_classes), where=present_in > 0)
    weights = np.zeros(n_classes)
    weights[seen] = np.median(freq[seen]) / freq[seen]
    return weights.astype(np.float32)


@dataclass
class SegConfig:
    """Paper defaults: SGD m=0.9, lr 1e-3 -> 1e-4 after epoch 20, 30 epochs, batch 32."""

    data: list[str]
    out: str
    backbone: str = "efficientnet_lite0_ms"
    backbone_weights: str = "default"
    neck: str = DEFAULT_NECK
    detail: str = ""  # a finer backbone level for the segmentation head (e.g. "s4")
    decoder_channels: int = 128
    epochs: int = 30
    lr: float = 1e-3
    lr_after: float = 1e-4
    drop_after: int = 20
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 32
    optimizer: str = "sgd"
    class_weights: str = "none"
    views: int = 1
    size: int = 224
    freeze_backbone: bool = True
    device: str = "auto"
    seed: int = 0
    cache_dir: str = "~/.cache/vidhash/features"
    resume: bool = False
    extra: dict = field(default_factory=dict)


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


def train_segmentation(cfg: SegConfig, log=print) -> dict:
    """Train the PSP module; returns the final validation metrics (also in the checkpoint)."""
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    train_sets = merged_voc(cfg.data, "train", cfg.size)
    val_sets = merged_voc(cfg.data, "val", cfg.size)
    labels = train_sets[0].labels
    if len(labels) > 255:
        raise UsageError("more than 255 merged classes cannot be stored in uint8 masks")
    if cfg.optimizer not in OPTIMIZERS or cfg.class_weights not in CLASS_WEIGHTS:
        raise UsageError(f"optimizer: one of {OPTIMIZERS}; class weights: one of {CLASS_WEIGHTS}")
    if cfg.views < 1:
        raise UsageError("--views must be at least 1")
    train, val = Views(_Concat(train_sets), cfg.views, cfg.seed, cfg.size), _Concat(val_sets)
    backbone = get_backbone(cfg.backbone, cfg.backbone_weights)
    neck = parse_neck(cfg.neck) if backbone.multi_scale else None
    detail = (cfg.detail or None) if backbone.multi_scale else None
    model = PSPSegNet(backbone, len(labels), cfg.decoder_channels, neck, detail)
    out = Path(cfg.out).expanduser()
    resume_path = out.with_name(out.name + ".resume")
    if cfg.resume and out.is_file():
        loaded, _ = load_checkpoint(out)
        model.load_state_dict(loaded.state_dict())
    model.to(device)
    if cfg.freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    start_epoch, history = 0, []
    if cfg.resume and resume_path.is_file():
        start_epoch, history = load_resume_state(resume_path, opt, model)
        log(f"resuming after epoch {start_epoch}")

    cache_dir = Path(cfg.cache_dir).expanduser()
    maps = {}
    masks = {}
    levels = list(neck or {}) + ([detail] if detail else [])

    def frozen_maps(x: torch.Tensor):
        out = model.backbone(x)
        return {k: out[k] for k in levels} if levels else out

    for split, ds in (("train", train), ("val", val)):
        masks[split] = np.stack([ds.mask(i) for i in range(len(ds))])  # no image decoded
        if cfg.freeze_backbone:
            model.backbone.eval()
            key = backbone_cache_key(model.backbone, cfg.backbone, cfg.size)
            n_views = cfg.views if split == "train" else 1
            key.update(levels=levels, views=n_views, seed=cfg.seed)
            files = train.dataset.files() if split == "train" else val.files()
            maps[split] = cached_outputs(
                frozen_maps,
                ds,
                key,
                cache_dir,
                None,
                str(device),
                desc=f"backbone {split}",
                chunk_keys=chunk_fingerprints([f for f in files for _ in range(n_views)]),
            )
    weights = None
    if cfg.class_weights == "median-freq":
        weights = torch.from_numpy(median_frequency_weights(masks["train"], len(labels)))
        weights = weights.to(device)

    def batches(split: str, order: np.ndarray):
        ds = train if split == "train" else val
        for start in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[start : start + cfg.batch_size])
            y = torch.from_numpy(masks[split][idx]).to(device)
            if cfg.freeze_backbone:
                yield _rows(maps[split], idx, device), y, True
            else:
                imgs = np.stack([ds[int(i)][0] for i in idx])
                x = torch.from_numpy(imgs).to(device).permute(0, 3, 1, 2).float().div_(255.0)
                yield x, y, False

    def run(x: torch.Tensor, is_map: bool) -> torch.Tensor:
        size = (cfg.size, cfg.size)
        return model.forward_from_features(x, size) if is_map else model(x)

    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    metrics: dict = {}
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        lr = step_lr(epoch, cfg.lr, cfg.drop_after, cfg.lr_after)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        if cfg.freeze_backbone:
            model.backbone.eval()
        order = torch.randperm(len(train), generator=gen).numpy()
        n_steps = -(-len(order) // cfg.batch_size)
        started, total, count = time.time(), 0.0, 0
        for x, y, is_map in tqdm(batches("train", order), f"epoch {epoch}", n_steps, leave=False):
            if len(y) < 2:  # BatchNorm cannot train on a single sample
                continue
            with autocast(device):
                loss = segmentation_loss(run(x, is_map).float(), y, weights)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(y)
            count += len(y)
        metrics = evaluate_segmentation(
            model, batches("val", np.arange(len(val))), run, labels, val_sets, device
        )
        metrics.update(
            epoch=epoch,
            train_loss=round(total / count, 4),
            lr=lr,
            epoch_seconds=round(time.time() - started, 1),
        )
        history.append({k: metrics[k] for k in ("epoch", "train_loss", "miou", "pixel_acc")})
        log(json.dumps({k: v for k, v in metrics.items() if k != "per_class_iou"}))
        header = {
            "arch": "psp-seg",
            "name": out.stem,
            "backbone": {
                "name": cfg.backbone,
                "out_channels": model.backbone.out_channels,
                **model.backbone.weights_info.meta,
            },
            "classes": labels,
            "seg_classes": labels,
            "code_bits": 0,
            "preprocessing": model.backbone.weights_info.transforms(),
            "head": {
                "decoder_channels": cfg.decoder_channels,
                "bins": list(model.decoder.bins),
                "neck": neck,
                "detail": detail,
            },
            "train": {**asdict(cfg), "history": history},
            "metrics": metrics,
        }
        save_checkpoint(model, out, header)
        save_resume_state(resume_path, opt, model, epoch, history)
    return metrics


def _rows(arrays, idx: np.ndarray, device: torch.device):
    """Cached rows as float32 tensors: one array, or a dict of them (multi-scale maps)."""
    if isinstance(arrays, dict):
        return {k: _rows(v, idx, device) for k, v in arrays.items()}
    return torch.from_numpy(np.asarray(arrays[idx], np.float32)).to(device)


def evaluate_segmentation(model, batches, run, labels, val_sets, device) -> dict:
    """Confusion over all val pixels; also per data set (e.g. CamVid alone)."""
    n = len(labels)
    model.eval()
    conf = np.zeros((n, n), np.int64)
    per_set = [np.zeros((n, n), np.int64) for _ in val_sets]
    bounds = np.cumsum([0] + [len(ds) for ds in val_sets])
    seen = 0
    with torch.inference_mode():
        for x, y, is_map in batches:
            pred = run(x, is_map).argmax(1).cpu().numpy()
            truth = y.cpu().numpy()
            for k in range(len(pred)):
                c = confusion(pred[k].ravel(), truth[k].ravel(), n)
                conf += c
                per_set[int(np.searchsorted(bounds, seen, side="right")) - 1] += c
                seen += 1
    result = seg_metrics(conf, labels)
    result["per_dataset"] = {
        ds.root.name: seg_metrics(c, labels) for ds, c in zip(val_sets, per_set, strict=True)
    }
    return result
