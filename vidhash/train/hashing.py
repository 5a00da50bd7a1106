"""Phase 2: train the hash head (``vidhash train-hash``), proposed PSP or DLBHC baseline.

Both architectures use the same recipe, head, pooling and schedule; only the head's input
differs (PSP outputs vs the backbone map). What runs each epoch depends on what is frozen:

* backbone frozen: its maps are cached on disk once (``vidhash.train.cache``);
* backbone and PSP frozen (or the baseline): the pooled head input is computed once from
  the cached maps, so every epoch is only the FC stack;
* nothing frozen: full forward passes (the GPU setting; AMP on CUDA).

At the end the run reports test accuracy and Hamming-ranking mAP@topk / mAP@all with the
test images as queries and the training images as the database (the DLBHC protocol),
and stores them in the checkpoint header.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vidhash.errors import UsageError
from vidhash.models.backbones import get_backbone
from vidhash.models.checkpoint import load_checkpoint, save_checkpoint
from vidhash.models.nets import CODE_LENGTHS, BaselineHashNet, HashNet, PSPHashNet, PSPSegNet
from vidhash.train.cache import backbone_cache_key, cached_outputs, chunk_fingerprints
from vidhash.train.datasets import ImageFolderSet
from vidhash.train.loop import (
    autocast,
    load_resume_state,
    resolve_device,
    save_resume_state,
    seed_everything,
    step_lr,
)
from vidhash.train.retrieval import mean_average_precision


@dataclass
class HashConfig:
    """Paper defaults: batch 96, SGD m=0.9, lr 1e-3 -> 1e-4 after epoch 20, 30 epochs."""

    train_dir: str
    test_dir: str
    out: str
    arch: str = "psp"
    bits: int = 48
    seg_checkpoint: str | None = None
    backbone: str = "efficientnet_lite0"
    backbone_weights: str = "default"
    width: int = 4096
    head_input: str = "stacked"
    pool: int = 4
    epochs: int = 30
    lr: float = 1e-3
    lr_after: float = 1e-4
    drop_after: int = 20
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 96
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


def build_hash_model(cfg: HashConfig, num_classes: int) -> tuple[HashNet, dict]:
    """The network to train, its backbone/PSP taken from the segmentation checkpoint."""
    seg_header: dict = {}
    seg: PSPSegNet | None = None
    if cfg.seg_checkpoint:
        seg, seg_header = load_checkpoint(cfg.seg_checkpoint)
        if not isinstance(seg, PSPSegNet):
            raise UsageError(f"{cfg.seg_checkpoint} is not a train-seg (psp-seg) checkpoint")
    if cfg.arch == "psp":
        if seg is None:
            raise UsageError("--arch psp needs --seg-checkpoint (a train-seg checkpoint)")
        model = PSPHashNet(
            seg.backbone,
            len(seg_header["seg_classes"]),
            seg_header["head"]["decoder_channels"],
            cfg.bits,
            num_classes,
            cfg.width,
            cfg.head_input,
            cfg.pool,
        )
        model.decoder.load_state_dict(seg.decoder.state_dict())
        model.seg_head.load_state_dict(seg.seg_head.state_dict())
        backbone_name = seg_header["backbone"]["name"]
    elif cfg.arch == "baseline":
        # Same backbone as the proposed net when a seg checkpoint is given: a fair comparison.
        backbone = (
            seg.backbone if seg is not None else get_backbone(cfg.backbone, cfg.backbone_weights)
        )
        backbone_name = seg_header["backbone"]["name"] if seg is not None else cfg.backbone
        model = BaselineHashNet(backbone, cfg.bits, num_classes, cfg.width, cfg.pool)
    else:
        raise UsageError(f"--arch must be psp or baseline, not {cfg.arch!r}")
    return model, {"name": backbone_name, "seg_header": seg_header}


def frozen_modules(model: HashNet, cfg: HashConfig) -> list[torch.nn.Module]:
    frozen = [model.backbone] if cfg.freeze_backbone else []
    if isinstance(model, PSPHashNet) and cfg.freeze_psp:
        frozen += [model.decoder, model.seg_head]
    return frozen


def train_hashing(cfg: HashConfig, log=print) -> dict:
    """Train the hash head; returns metrics (also written into the checkpoint header)."""
    if cfg.bits not in CODE_LENGTHS:
        raise UsageError(f"--bits must be one of {CODE_LENGTHS}")
    if cfg.arch == "psp" and cfg.freeze_psp and not cfg.freeze_backbone:
        raise UsageError("--freeze-psp needs --freeze-backbone (the PSP reads the backbone map)")
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    train = ImageFolderSet.open(cfg.train_dir, cfg.size, cfg.train_per_class)
    test = ImageFolderSet.open(cfg.test_dir, cfg.size, cfg.test_per_class, classes=train.classes)
    model, info = build_hash_model(cfg, len(train.classes))
    out = Path(cfg.out).expanduser()
    resume_path = out.with_name(out.name + ".resume")
    if cfg.resume and out.is_file():
        loaded, _ = load_checkpoint(out)
        model.load_state_dict(loaded.state_dict())
    model.to(device)
    for module in frozen_modules(model, cfg):
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start_epoch, history = 0, []
    if cfg.resume and resume_path.is_file():
        start_epoch, history = load_resume_state(resume_path, opt, model)
        log(f"resuming after epoch {start_epoch}")

    # What each step starts from: cached head inputs, cached backbone maps, or images.
    t0 = time.time()
    stage = "image"
    arrays: dict[str, np.ndarray] = {}
    if cfg.freeze_backbone:
        head_only = isinstance(model, BaselineHashNet) or cfg.freeze_psp
        stage = "head" if head_only else "map"
        for split, ds in (("train", train), ("test", test)):
            key = backbone_cache_key(model.backbone, info["name"], cfg.size)
            maps = cached_outputs(
                model.backbone,
                ds,
                key,
                Path(cfg.cache_dir).expanduser(),
                32,
                str(device),
                desc=f"backbone {split}",
                chunk_keys=chunk_fingerprints(ds.files),
            )
            arrays[split] = head_inputs(model, maps, device) if head_only else maps
    cache_seconds = round(time.time() - t0, 1)
    labels = {"train": np.asarray(train.targets), "test": np.asarray(test.targets)}

    def inputs(split: str, idx: np.ndarray) -> torch.Tensor:
        if stage != "image":
            return torch.from_numpy(np.asarray(arrays[split][np.sort(idx)], np.float32)).to(device)
        ds = train if split == "train" else test
        imgs = np.stack([ds[int(i)][0] for i in np.sort(idx)])
        return torch.from_numpy(imgs).to(device).permute(0, 3, 1, 2).float().div_(255.0)

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        started, total, correct = time.time(), 0.0, 0
        order = torch.randperm(len(train), generator=gen).numpy()
        steps = range(0, len(order), cfg.batch_size)
        for start in tqdm(steps, desc=f"epoch {epoch}", leave=False):
            idx = np.sort(order[start : start + cfg.batch_size])
            if len(idx) < 2:  # BatchNorm cannot train on a single sample
                continue
            x, y = inputs("train", idx), torch.from_numpy(labels["train"][idx]).to(device)
            with autocast(device):
                _, logits = forward(x)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        epoch_seconds = round(time.time() - started, 2)
        entry = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": round(total / len(train), 4),
            "train_acc": round(correct / len(train), 4),
            "epoch_seconds": epoch_seconds,
        }
        last = epoch == cfg.epochs
        if last:
            metrics = evaluate_hashing(
                forward, inputs, labels, len(train), len(test), cfg.topk, model
            )
            entry.update(metrics)
        history.append(entry)
        log(json.dumps(entry))
        header = hash_header(model, cfg, info, train.classes, history, metrics, cache_seconds)
        dtype = torch.float16 if cfg.store_dtype == "float16" else None
        save_checkpoint(model, out, header, dtype=dtype)
        save_resume_state(resume_path, opt, model, epoch, history)
    return metrics


def head_inputs(
    model: HashNet, maps: np.ndarray, device: torch.device, batch: int = 256
) -> np.ndarray:
    """Frozen backbone maps -> the flat vectors the head reads (PSP outputs or pooled map)."""
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(maps), batch), desc="head inputs", leave=False):
            x = torch.from_numpy(np.asarray(maps[start : start + batch], np.float32)).to(device)
            chunks.append(model.features_from_map(x).float().cpu().numpy())
    return np.concatenate(chunks)


def evaluate_hashing(forward, inputs, labels, n_train, n_test, topk, model) -> dict:
    """Test accuracy, mAP@topk and mAP@all (queries: test; database: train)."""
    model.eval()
    bits, preds = {}, {}
    with torch.inference_mode():
        for split, n in (("train", n_train), ("test", n_test)):
            rs, ps = [], []
            for start in range(0, n, 256):
                r, logits = forward(inputs(split, np.arange(start, min(start + 256, n))))
                rs.append((r.float() >= 0.5).cpu().numpy())
                ps.append(logits.argmax(1).cpu().numpy())
            bits[split], preds[split] = np.concatenate(rs), np.concatenate(ps)
    q, db = (bits["test"], labels["test"]), (bits["train"], labels["train"])
    return {
        "test_acc": round(float((preds["test"] == labels["test"]).mean()), 4),
        f"map@{topk}": round(mean_average_precision(*q, *db, topk=topk), 4),
        "map@all": round(mean_average_precision(*q, *db, topk=None), 4),
        "queries": int(n_test),
        "database": int(n_train),
    }


def hash_header(model, cfg, info, classes, history, metrics, cache_seconds) -> dict:
    head = {"width": cfg.width, "pool": cfg.pool}
    header = {
        "arch": cfg.arch,
        "name": Path(cfg.out).stem,
        "backbone": {
            "name": info["name"],
            "out_channels": model.backbone.out_channels,
            **model.backbone.weights_info.meta,
        },
        "classes": list(classes),
        "code_bits": cfg.bits,
        "preprocessing": model.backbone.weights_info.transforms(),
        "head": head,
        "train": {**asdict(cfg), "history": history, "cache_seconds": cache_seconds},
        "metrics": metrics,
    }
    if isinstance(model, PSPHashNet):
        seg = info["seg_header"]
        head.update(input=cfg.head_input, decoder_channels=seg["head"]["decoder_channels"])
        header["seg_classes"] = seg["seg_classes"]
        header["segmentation"] = {
            "checkpoint": str(cfg.seg_checkpoint),
            "metrics": {k: seg["metrics"].get(k) for k in ("miou", "pixel_acc")},
        }
    return header
