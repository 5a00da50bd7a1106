"""Pieces both training phases share: device, seeding, schedule, AMP, resumable state."""

from __future__ import annotations

import json
import random
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidhash.errors import CheckpointError, UsageError
from vidhash.fsutil import atomic_path


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for but no CUDA GPU is available")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for shuffling (repeatable runs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def step_lr(epoch: int, lr: float, drop_after: int, lr_after: float) -> float:
    """The paper's schedule: ``lr`` for epochs 1..drop_after, then ``lr_after`` (1-based)."""
    return lr if epoch <= drop_after else lr_after


def autocast(device: torch.device) -> AbstractContextManager:
    """Mixed precision on CUDA (bf16-free fp16 autocast); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def make_optimizer(
    params: list, name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``"adam"`` or ``"sgd"`` (with momentum) over ``params``: both training phases use it."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def save_resume_state(
    path: Path, optimizer: torch.optim.Optimizer, model: torch.nn.Module, epoch: int, history: list
) -> None:
    """Optimizer state (SGD momentum, Adam moments and steps) + epoch in a sidecar
    safetensors file (``<ckpt>.resume``)."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"state/{key}/{names[id(p)]}"] = value.detach().cpu().contiguous()
    meta = {"epoch": epoch, "history": history}
    with atomic_path(path) as tmp:
        save_file(
            tensors or {"_empty": torch.zeros(1)}, str(tmp), metadata={"resume": json.dumps(meta)}
        )


def load_resume_state(
    path: Path, optimizer: torch.optim.Optimizer, model: torch.nn.Module
) -> tuple[int, list]:
    """Restore the optimizer's state; returns (last finished epoch, metric history)."""
    if not path.is_file():
        raise CheckpointError(f"--resume: no resume state at {path}")
    params = dict(model.named_parameters())
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["resume"])
        for name in fh.keys():  # noqa: SIM118 - safe_open API
            # vidhash 0.1.0 wrote SGD momentum only, as "momentum/<param>".
            old = name.removeprefix("momentum/")
            key = f"state/momentum_buffer/{old}" if old != name else name
            if not key.startswith("state/"):
                continue
            _, state_key, param = key.split("/", 2)
            p, value = params[param], fh.get_tensor(name)
            optimizer.state[p][state_key] = value if state_key == "step" else value.to(p.device)
    return int(meta["epoch"]), list(meta["history"])
