"""The training configuration: parts own their defaults and checks; the CLI is only their
options (its defaults are the library's, and it validates nothing itself)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest
import torch

from vidhash.cli import main, train_hash, train_seg
from vidhash.errors import UsageError
from vidhash.models.header import CODE_LENGTHS
from vidhash.train.config import RECIPES, HashData, HashHead, Runtime, Schedule, SegData, SegHead
from vidhash.train.hashing import HashConfig
from vidhash.train.loop import Checkpoints, Trainer, start
from vidhash.train.objectives import HashObjective, SegObjective
from vidhash.train.seg import SegConfig


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The config each command would train with (nothing is trained)."""
    seen: dict = {}

    def fake(cfg, log) -> dict:
        seen["cfg"] = cfg
        return {}

    monkeypatch.setattr(train_hash, "train_hashing", fake)
    monkeypatch.setattr(train_seg, "train_segmentation", fake)
    return seen


def test_cli_defaults_are_the_library_defaults(captured: dict, tmp_path: Path) -> None:
    seg = tmp_path / "seg.safetensors"
    seg.write_bytes(b"")
    main(["train-hash", "--train", str(tmp_path), "--seg-checkpoint", str(seg), "--out", "h"])
    data, head = HashData(train_dir=str(tmp_path)), HashHead(seg_checkpoint=str(seg))
    assert captured["cfg"] == HashConfig(out="h", data=data, head=head)
    assert captured["cfg"].schedule == RECIPES["distill"]
    main(["train-seg", "--data", str(tmp_path), "--out", "s"])
    assert captured["cfg"] == SegConfig(out="s", data=SegData(roots=[str(tmp_path)]))


def test_every_cli_option_reaches_its_part(captured: dict, tmp_path: Path) -> None:
    main(["train-hash", "--train", str(tmp_path), "--train", str(tmp_path), "--out", "h",
          "--arch", "baseline", "--bits", "16", "--objective", "paper", "--epochs", "3",
          "--w-quant", "0.5", "--teacher", "head", "--threads", "1", "--views", "2",
          "--train-psp", "--train-backbone", "--store-dtype", "float16", "--resume"])  # fmt: skip
    cfg = captured["cfg"]
    assert cfg.data.train_dir == (str(tmp_path),) * 2 and cfg.data.views == 2
    assert (cfg.head.arch, cfg.head.bits, cfg.head.freeze_psp) == ("baseline", 16, False)
    assert cfg.objective == HashObjective("paper", w_quant=0.5, teacher="head")
    assert cfg.schedule == Schedule(**{**RECIPES["paper"].__dict__, "epochs": 3})
    assert cfg.runtime == Runtime(threads=1) and cfg.resume and cfg.store_dtype == "float16"
    main(["train-seg", "--data", str(tmp_path), "--out", "s", "--class-weights",
          "median-freq", "--neck", "s8:4,head:4", "--lr", "0.5", "--train-backbone"])  # fmt: skip
    cfg = captured["cfg"]
    assert cfg.objective == SegObjective("median-freq") and cfg.schedule.lr == 0.5
    assert cfg.head == SegHead(neck="s8:4,head:4", freeze_backbone=False)


def test_help_shows_the_library_choices_and_recipes() -> None:
    text = train_hash.command.get_help(click.Context(train_hash.command))
    assert "|".join(map(str, CODE_LENGTHS)) in text
    assert f"recipe: paper {RECIPES['paper'].epochs}, distill {RECIPES['distill'].epochs}" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "epochs must be positive"),
        (["--views", "0"], "views must be positive"),
        (["--neck", "s8-64"], "neck must look like"),
        (["--decoder-channels", "0"], "decoder_channels must be positive"),
    ],
)
def test_the_cli_reports_the_library_checks(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["train-seg", "--data", str(tmp_path), "--out", "s", *args])
    assert done.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make",
    [
        lambda: Schedule(optimizer="rmsprop"),
        lambda: Schedule(batch_size=0),
        lambda: Runtime(device="tpu"),
        lambda: HashHead(arch="psp"),
        lambda: HashHead(arch="baseline", bits=20),
        lambda: HashHead(arch="baseline", init="itq", freeze_psp=False),
        lambda: HashHead(seg_checkpoint="s", freeze_backbone=False),
        lambda: HashData(train_dir=()),
        lambda: HashObjective("triplet"),
        lambda: SegObjective("inverse"),
        lambda: SegHead(neck="s8:3"),
        lambda: HashConfig(out="x", data=HashData(train_dir="a", unlabelled="b"),
                           head=HashHead(arch="baseline"), objective=HashObjective("paper")),
    ],
)  # fmt: skip
def test_bad_values_name_the_option_never_a_flag(make) -> None:
    with pytest.raises(UsageError) as raised:
        make()
    assert "--" not in str(raised.value)


def test_options_round_trip_through_the_header_record() -> None:
    cfg = HashConfig.from_options(
        train_dir=["a", "b"], out="x", arch="baseline", objective="paper", lr=0.5, threads=2
    )
    record = cfg.record()
    assert record["train_dir"] == ("a", "b") and record["batch_size"] == 96
    assert record["threads"] == 2 and list(record)[-1] == "threads"
    assert HashConfig.from_options(**record) == cfg
    seg = SegConfig.from_options(data="v", out="y", optimizer="adam")
    assert SegConfig.from_options(**seg.record()) == seg


class CountingPhase:
    """Records the rows of every batch the trainer hands it; loss: the weight's square."""

    def __init__(self, model: torch.nn.Module, items: int) -> None:
        self.model, self.items, self.seen = model, items, []

    def batch(self, idx: np.ndarray) -> np.ndarray:
        self.seen.append(idx)
        return idx

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        return self.model(torch.ones(len(batch), 1))

    def loss(self, out: torch.Tensor, batch: np.ndarray) -> tuple[torch.Tensor, dict]:
        return (out**2).mean(), {"rows": float(len(batch))}

    def end_epoch(self, summary: dict, last: bool) -> tuple[dict, dict]:
        return summary, {"last": last}

    def header(self, history: list[dict], metrics: dict) -> dict:
        return {"arch": "baseline", "train": {"history": history}, "metrics": metrics}


def test_trainer_schedule_batches_checkpoints_and_resume(tmp_path: Path) -> None:
    schedule = Schedule(optimizer="sgd", epochs=2, lr=0.1, lr_after=0.01, drop_after=1,
                        batch_size=4)  # fmt: skip
    saves = Checkpoints(tmp_path / "m.safetensors")

    def trainer(schedule: Schedule, saves: Checkpoints) -> tuple[Trainer, CountingPhase]:
        device, generator = start(Runtime(device="cpu"))
        model = torch.nn.Linear(1, 1)
        phase = CountingPhase(model, 9)
        return Trainer(model, [], schedule, device, generator, saves, print), phase

    first, phase = trainer(schedule, saves)
    metrics = first.fit(phase)
    assert metrics == {"last": True}
    assert [len(b) for b in phase.seen] == [4, 4] * 2  # the last row alone is skipped
    assert all(np.all(np.diff(b) > 0) for b in phase.seen)  # sorted slices of a shuffle
    assert [h["lr"] for h in first.history] == [0.1, 0.01]
    assert first.history[0]["train_rows"] == 4.0
    saves.out.unlink()  # not a real network's checkpoint: resume the optimizer state only
    more = Schedule(**{**schedule.__dict__, "epochs": 3})
    resumed, phase = trainer(more, Checkpoints(saves.out, resume=True))
    assert resumed.start_epoch == 2 and resumed.history == first.history
    resumed.fit(phase)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3] and len(phase.seen) == 2
