"""index -> annotate -> evaluate --compare, and benchmark-hashing, with real checkpoints.

The two checkpoints are real vidhash networks: the pretrained EfficientNet-Lite0 backbone
(shipped with its pip package) and a seeded, untrained hash head, i.e. random projections
of ImageNet features. They stand in for trained models only in being untrained.
"""

from __future__ import annotations

import json
from pathlib import Path

import media
import pandas as pd
import pytest
import torch
from indexes import run_main as run

from vidhash.fsutil import content_hash

pytestmark = pytest.mark.slow

HEADER = {
    "arch": "baseline",
    "backbone": {"name": "efficientnet_lite0", "out_channels": 40},
    "classes": ["a", "b", "c"],
    "code_bits": 48,
    "preprocessing": {},
    "head": {"width": 64, "pool": 4},
    "train": {},
    "metrics": {},
}


def make_checkpoint(path: Path, seed: int) -> Path:
    from vidhash.models.backbones import get_backbone
    from vidhash.models.checkpoint import save_checkpoint
    from vidhash.models.nets import BaselineHashNet

    torch.manual_seed(seed)
    net = BaselineHashNet(get_backbone("efficientnet_lite0"), 48, 3, width=64).eval()
    save_checkpoint(net, path, {**HEADER, "name": f"seed{seed}"})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return make_checkpoint(root / "a.safetensors", 0), make_checkpoint(root / "b.safetensors", 1)


def test_index_annotate_evaluate_compare(tmp_path, capsys, checkpoints):
    videos = tmp_path / "videos"
    media.make_video(videos / "cat1.mp4", frames_from=("chelsea",), seconds=2, size=(96, 64))
    media.make_video(videos / "cat2.webm", codec="vp9", frames_from=("chelsea",), seconds=2)
    media.make_video(videos / "man1.mp4", frames_from=("astronaut",), seconds=2)
    media.make_video(videos / "man2.avi", codec="mpeg4", frames_from=("astronaut",), seconds=2)
    media.make_video(videos / "cup.mp4", frames_from=("coffee",), seconds=2)
    media.make_image(videos / "cat3.jpg", name="chelsea", size=(120, 80))
    (videos / "broken.mp4").write_bytes(b"not a video")
    labels = tmp_path / "labels.csv"
    rows = ["concept,group,video,start,end"]
    rows += [f"cat,local,{v},," for v in ("cat1.mp4", "cat2.webm", "cat3.jpg")]
    rows += [f"person,local,{v},," for v in ("man1.mp4", "man2.avi")]
    rows += [f"indoor,global,{v},," for v in ("cup.mp4", "cat1.mp4", "cat2.webm")]
    labels.write_text("\n".join(rows) + "\n")

    for name, ckpt in zip(("a", "b"), checkpoints, strict=True):
        argv = ["index", str(videos), "--out", str(tmp_path / name), "--model", str(ckpt)]
        code, _, err = run([*argv, "--every", "0.5", "--workers", "1"], capsys)
        assert code in (0, 1), err  # 1: broken.mp4 is recorded as failed, the rest indexed
        code, _, err = run(["annotate", str(tmp_path / name), "--labels", str(labels)], capsys)
        assert code == 0, err

    out = tmp_path / "report"
    argv = ["evaluate", str(tmp_path / "a"), "--compare", str(tmp_path / "b"), "--out", str(out)]
    code, stdout, err = run([*argv, "--topk", "1,5"], capsys)
    assert code == 0, err
    local = pd.read_csv(out / "table-local.csv").set_index("concept")
    assert list(local.index) == ["cat", "person", "overall"]
    # Same-video keyframes are excluded, so a cat query must find the *other* cat files:
    # ImageNet features (even through a random projection) put them first.
    assert local.loc["cat", "top-1 proposed"] > 0.5
    assert local.loc["person", "top-5 baseline"] > 0.5
    summary = json.loads((out / "summary.json").read_text())
    # The report names the model each index was built with (sha256 of the checkpoint).
    assert summary["runs"]["proposed"]["model_id"] == content_hash(checkpoints[0])
    assert summary["runs"]["baseline"]["model_id"] == content_hash(checkpoints[1])
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 2 + 2


def test_benchmark_hashing_with_a_checkpoint(tmp_path, capsys, checkpoints):
    from test_eval_protocols import make_dataset

    ds = make_dataset(tmp_path / "ds", train=4, test=2)
    out = tmp_path / "bench"
    argv = ["benchmark-hashing", str(ds), "--model", str(checkpoints[0]), "--out", str(out)]
    argv += ["--protocol", "dlbhc", "--protocol", "cifar10-1", "--queries-per-class", "1"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    dlbhc = json.loads((out / "dlbhc-summary.json").read_text())
    cifar = json.loads((out / "cifar10-1-summary.json").read_text())
    assert (dlbhc["n_queries"], dlbhc["n_database"]) == (3, 12)
    assert (cifar["n_queries"], cifar["n_database"]) == (3, 15)
    assert dlbhc["model_name"] == "seed0" and dlbhc["code_bits"] == 48
    assert 0.0 <= dlbhc["map@all"] <= 1.0
