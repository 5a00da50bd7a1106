"""The one training loop both phases run: :class:`Trainer`, in the shape of Lightning's.

The trainer owns the model's training state: which modules stay frozen, the optimizer,
the learning-rate schedule, mixed precision, the epoch loop, the checkpoint written after
every epoch and the resume state beside it. A phase (:class:`Phase`: hash training,
segmentation training) supplies only its batches, its forward pass, its loss, what it
measures after an epoch and its checkpoint header.

Contracts that keep runs repeatable and files readable across versions:

* one shuffled order per epoch, ``torch.randperm`` on the generator seeded by
  :func:`start`; batches are its sorted slices; a batch of one row is skipped (BatchNorm
  cannot train on a single sample);
* the phase's forward runs under :func:`autocast` (fp16 on CUDA), its loss outside it;
* the checkpoint (:func:`vidhash.models.checkpoint.save_checkpoint`) and the resume state
  (``<checkpoint>.resume``: optimizer state by parameter name, the last epoch and the
  history) are rewritten after every epoch; ``resume=True`` reloads both and goes on after
  the last finished epoch. 0.1.0's SGD-only resume files are read too.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from vidhash.errors import CheckpointError, UsageError
from vidhash.fsutil import atomic_path
from vidhash.train.config import Runtime, Schedule

Log = Callable[[str], None]


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda asked for but no CUDA GPU is available")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for shuffling (repeatable runs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def start(runtime: Runtime) -> tuple[torch.device, torch.Generator]:
    """Apply ``runtime`` before anything is built (weights initialise from the seed):
    the device, torch's thread count, every seed; returns the shuffling generator."""
    device = resolve_device(runtime.device)
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    return device, seed_everything(runtime.seed)


def autocast(device: torch.device) -> AbstractContextManager:
    """Mixed precision on CUDA (fp16 autocast); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def make_optimizer(params: list, schedule: Schedule) -> torch.optim.Optimizer:
    """``schedule``'s optimizer (Adam, or SGD with momentum) over ``params``."""
    if schedule.optimizer == "adam":
        return torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    return torch.optim.SGD(
        params, lr=schedule.lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay
    )


class Phase(Protocol):
    """What a phase gives the :class:`Trainer` (a LightningModule's training hooks)."""

    items: int  # rows an epoch shuffles (images x views)

    def batch(self, idx: np.ndarray) -> Any:
        """Inputs and targets of rows ``idx`` (sorted), on the device."""

    def forward(self, batch: Any) -> Any:
        """The model's outputs for ``batch`` (run under autocast)."""

    def loss(self, out: Any, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise and its named parts (averaged into the epoch's record)."""

    def end_epoch(self, summary: dict, last: bool) -> tuple[dict, dict]:
        """After an epoch (``summary``: epoch, lr, train_* means, epoch_seconds): its
        history entry and the metrics so far (both go into the header)."""

    def header(self, history: list[dict], metrics: dict) -> dict:
        """The checkpoint header after an epoch."""


@dataclass(frozen=True)
class Checkpoints:
    """Where the trainer writes (``out`` and ``out.resume``), whether it first reads them
    back, and the tensors' stored precision (None: as trained)."""

    out: Path
    resume: bool = False
    dtype: torch.dtype | None = None

    @property
    def resume_path(self) -> Path:
        return self.out.with_name(self.out.name + ".resume")


class Trainer:
    """Trains ``model`` with ``schedule``, all but its ``frozen`` modules; see the module
    docstring. Built after :func:`start` (the model's initial weights depend on the seed)."""

    def __init__(
        self,
        model: torch.nn.Module,
        frozen: list[torch.nn.Module],
        schedule: Schedule,
        device: torch.device,
        generator: torch.Generator,
        checkpoints: Checkpoints,
        log: Log = print,
    ) -> None:
        self.model, self.frozen, self.schedule = model, frozen, schedule
        self.device, self.generator, self.checkpoints, self.log = (
            device,
            generator,
            checkpoints,
            log,
        )
        if checkpoints.resume and checkpoints.out.is_file():
            from vidhash.models.checkpoint import load_checkpoint

            model.load_state_dict(load_checkpoint(checkpoints.out)[0].state_dict())
        model.to(device)
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
        self.start_epoch, self.history = 0, []
        if checkpoints.resume and checkpoints.resume_path.is_file():
            self.start_epoch, self.history = load_resume_state(
                checkpoints.resume_path, self.optimizer, model
            )
            log(f"resuming after epoch {self.start_epoch}")

    def fit(self, phase: Phase) -> dict:
        """Run the epochs after :attr:`start_epoch`; returns the last epoch's metrics."""
        metrics: dict = {}
        for epoch in range(self.start_epoch + 1, self.schedule.epochs + 1):
            lr = self.schedule.lr_at(epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            started = time.time()
            totals, count = self._train_epoch(phase, epoch)
            summary = {"epoch": epoch, "lr": lr}
            summary |= {f"train_{k}": round(v / max(count, 1), 4) for k, v in totals.items()}
            summary["epoch_seconds"] = round(time.time() - started, 2)
            entry, metrics = phase.end_epoch(summary, epoch == self.schedule.epochs)
            self.history.append(entry)
            self._save(phase.header(self.history, metrics), epoch)
        return metrics

    def _train_epoch(self, phase: Phase, epoch: int) -> tuple[dict[str, float], int]:
        """One pass over a fresh shuffle; returns the row-weighted loss sums and the rows."""
        self.model.train()
        for module in self.frozen:
            module.eval()
        order = torch.randperm(phase.items, generator=self.generator).numpy()
        size = self.schedule.batch_size
        totals: dict[str, float] = {}
        count = 0
        for begin in tqdm(range(0, len(order), size), f"epoch {epoch}", leave=False):
            idx = np.sort(order[begin : begin + size])
            if len(idx) < 2:  # BatchNorm cannot train on a single sample
                continue
            batch = phase.batch(idx)
            with autocast(self.device):
                out = phase.forward(batch)
            loss, parts = phase.loss(out, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            count += len(idx)
        return totals, count

    def _save(self, header: dict, epoch: int) -> None:
        from vidhash.models.checkpoint import save_checkpoint

        save_checkpoint(self.model, self.checkpoints.out, header, dtype=self.checkpoints.dtype)
        save_resume_state(
            self.checkpoints.resume_path, self.optimizer, self.model, epoch, self.history
        )


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
        raise CheckpointError(f"resume: no resume state at {path}")
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
