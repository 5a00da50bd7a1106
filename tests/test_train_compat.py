"""Training files stay readable across versions.

``tests/fixtures/train-0.2.0/`` holds what vidhash 0.2.0 (the code before the trainer
refactor, issue 20) wrote after one epoch of a tiny train-hash (baseline, Adam) and
train-seg (Adam) run: the resume states and the checkpoint headers (the checkpoints
themselves hold a backbone: too large to keep). Made with::

    PYTHONPATH=/tmp/vh-base vidhash train-hash --train CIFAR4 --train-per-class 2 \\
      --arch baseline --backbone-weights none --levels s8 --width 16 --bits 12 --pool 1 \\
      --epochs 1 --batch-size 4 --device cpu --out hash.safetensors
    PYTHONPATH=/tmp/vh-base vidhash train-seg --data COCO6 --backbone-weights none \\
      --neck s8:4,s16:4,head:8 --decoder-channels 8 --epochs 1 --batch-size 4 \\
      --optimizer adam --device cpu --out seg.safetensors

Where that code is at hand (``/tmp/vh-base``, or ``$VIDHASH_BASE_CODE``), runs resumed
across versions are checked too: old epoch 1 + new epoch 2 and new epoch 1 + old epoch 2
must write exactly what the old code alone writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from vidhash.models.checkpoint import build_from_header
from vidhash.train.hashing import HashConfig
from vidhash.train.loop import Checkpoints, Trainer, start
from vidhash.train.seg import SegConfig

FIXTURES = Path(__file__).parent / "fixtures" / "train-0.2.0"
ROOT = Path(__file__).resolve().parents[1]
BASE = Path(os.environ.get("VIDHASH_BASE_CODE", "/tmp/vh-base"))


class WeightsPhase:
    """The smallest phase: no data; the loss is the trainable weights' mean square."""

    def __init__(self, model: torch.nn.Module, header: dict, items: int = 6) -> None:
        self.model, self.base, self.items = model, header, items

    def batch(self, idx: np.ndarray) -> np.ndarray:
        return idx

    def forward(self, batch: np.ndarray) -> None:
        return None

    def loss(self, out: None, batch: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return sum((p**2).mean() for p in trainable), {}

    def end_epoch(self, summary: dict, last: bool) -> tuple[dict, dict]:
        return summary, {}

    def header(self, history: list[dict], metrics: dict) -> dict:
        return {**self.base, "train": {"history": history}, "metrics": metrics}


@pytest.mark.parametrize("name, config", [("hash", HashConfig), ("seg", SegConfig)])
def test_released_resume_state_and_header_record_load(
    name: str, config: type, tmp_path: Path
) -> None:
    header = json.loads((FIXTURES / f"{name}.header.json").read_text())
    record = {k: v for k, v in header["train"].items() if k not in ("history", "cache_seconds")}
    cfg = config.from_options(**record)
    # The record this version writes reads exactly as 0.2.0's (keys, order, values).
    assert json.dumps(cfg.record()) == json.dumps(record)

    model = build_from_header(header)
    out = tmp_path / "run.safetensors"
    shutil.copy(FIXTURES / f"{name}.resume", tmp_path / "run.safetensors.resume")
    device, generator = start(cfg.runtime)
    schedule = dataclasses.replace(cfg.schedule, epochs=2)
    saves = Checkpoints(out, resume=True)
    trainer = Trainer(model, [model.backbone], schedule, device, generator, saves, print)
    assert trainer.start_epoch == 1 and trainer.history == header["train"]["history"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    state = trainer.optimizer.state
    assert trainable and all(set(state[p]) == {"step", "exp_avg", "exp_avg_sq"} for p in trainable)
    assert all(state[p]["exp_avg"].shape == p.shape for p in trainable)
    steps = float(state[trainable[0]]["step"])

    trainer.fit(WeightsPhase(model, header))
    assert schedule.batch_size == 4  # 6 rows: one batch of 4, one of 2
    assert float(state[trainable[0]]["step"]) == steps + 2
    # The state this version writes has 0.2.0's names.
    written = (FIXTURES / f"{name}.resume", tmp_path / "run.safetensors.resume")
    old, new = (sorted(safe_open(str(p), "pt").keys()) for p in written)
    assert old == new


def _image_folder(root: Path) -> Path:
    """Two classes of four 40x40 pictures (seeded noise around two colours)."""
    rng = np.random.default_rng(0)
    for k, colour in enumerate(((200, 60, 40), (30, 90, 210))):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(4):
            pixels = np.clip(rng.normal(colour, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{k}" / f"{i}.png")
    return root


def _train(code: Path, folder: Path, epochs: int, *extra: str) -> None:
    args = ["train-hash", "--train", "../images", "--arch", "baseline",
            "--backbone", "efficientnet_lite0", "--backbone-weights", "none", "--bits", "12",
            "--width", "16", "--pool", "1", "--objective", "paper", "--optimizer", "adam",
            "--batch-size", "4", "--device", "cpu", "--cache-dir", "../cache",
            "--out", "net.safetensors", "--epochs", str(epochs), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-m", "vidhash", *args], cwd=folder, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def _timeless(value):
    """``value`` without its wall-time fields (``epoch_seconds``, ``cache_seconds``)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if not k.endswith("_seconds")}
    return [_timeless(v) for v in value] if isinstance(value, list) else value


def _written(folder: Path) -> dict:
    """Every tensor's sha256 and the metadata (wall times left out) of the run's two files."""
    out = {}
    for name in ("net.safetensors", "net.safetensors.resume"):
        with safe_open(str(folder / name), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open API
                data = fh.get_tensor(key).contiguous().reshape(-1).view(torch.uint8).numpy()
                out[f"{name}:{key}"] = hashlib.sha256(data.tobytes()).hexdigest()
            out[name] = {k: _timeless(json.loads(v)) for k, v in fh.metadata().items()}
    return out


@pytest.mark.skipif(not (BASE / "vidhash" / "train").is_dir(), reason=f"needs 0.2.0 at {BASE}")
def test_runs_resumed_across_versions_write_what_either_version_writes(tmp_path: Path) -> None:
    _image_folder(tmp_path / "images")
    runs = {name: tmp_path / name for name in ("old", "new", "old-new", "new-old")}
    for folder in runs.values():
        folder.mkdir()
    _train(BASE, runs["old"], 1)
    _train(ROOT, runs["new"], 1)
    for first, second, code in (("old", "old-new", ROOT), ("new", "new-old", BASE)):
        for f in runs[first].iterdir():
            shutil.copy(f, runs[second])
        _train(code, runs[second], 2, "--resume")
    _train(BASE, runs["old"], 2, "--resume")
    reference = _written(runs["old"])
    assert _written(runs["old-new"]) == reference
    assert _written(runs["new-old"]) == reference
