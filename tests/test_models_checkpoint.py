"""Checkpoint format: round trip gives identical codes; damage is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import vidhash.models as vm
from vidhash.errors import CheckpointError
from vidhash.fsutil import content_hash
from vidhash.models.backbones import get_backbone
from vidhash.models.checkpoint import load_checkpoint, read_header, save_checkpoint
from vidhash.models.nets import PSPHashNet

HEADER = {
    "arch": "psp",
    "backbone": {"name": "efficientnet_lite0", "out_channels": 40},
    "classes": ["a", "b", "c"],
    "seg_classes": [f"s{i}" for i in range(7)],
    "code_bits": 48,
    "preprocessing": {},
    "head": {"width": 64, "pool": 4, "input": "both", "decoder_channels": 32},
    "train": {},
    "metrics": {"map@1000": 0.5},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[PSPHashNet, Path]:
    torch.manual_seed(0)
    net = PSPHashNet(get_backbone("efficientnet_lite0"), 7, 32, 48, 3, 64, "both").eval()
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    save_checkpoint(net, path, HEADER)
    return net, path


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)


def test_round_trip_gives_identical_codes(saved, images) -> None:
    net, path = saved
    loaded = vm.load_model(str(path), runtime="torch")
    assert np.array_equal(loaded.encode(images), net.encode(images))
    assert loaded.model_id == content_hash(path)
    assert loaded.code_bits == 48 and loaded.classes == ["a", "b", "c"]
    assert json.loads(json.dumps(loaded.config))["metrics"] == {"map@1000": 0.5}
    assert read_header(path)["format"] == 1


def test_fp16_storage_loads_back_close(saved, images, tmp_path: Path) -> None:
    net, _ = saved
    half = tmp_path / "half.safetensors"
    save_checkpoint(net, half, HEADER, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * saved[1].stat().st_size
    loaded = vm.load_model(str(half), runtime="torch")
    assert next(loaded.head.parameters()).dtype == torch.float32
    agree = np.unpackbits(loaded.encode(images)) == np.unpackbits(net.encode(images))
    assert agree.mean() > 0.9


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_file_is_a_checkpoint_error(saved, tmp_path: Path, damage: str) -> None:
    data = saved[1].read_bytes()
    bad = tmp_path / "bad.safetensors"
    payload = {"truncate": data[: len(data) // 2], "garbage": b"\x93NUMPY" * 50, "empty": b""}
    bad.write_bytes(payload[damage])
    with pytest.raises(CheckpointError) as err:
        vm.load_model(str(bad))
    assert "\n" not in str(err.value)


def test_plain_safetensors_or_mismatched_header_is_rejected(saved, tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a vidhash checkpoint"):
        load_checkpoint(plain)
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(saved[0], wrong, {**HEADER, "code_bits": 64})
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(wrong)
    with pytest.raises(CheckpointError, match="not found"):
        vm.load_model(str(tmp_path / "missing.safetensors"))


def test_shipped_name_is_hash_checked(saved, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = saved
    good = {"default": {"file": str(path), "sha256": content_hash(path)}}
    monkeypatch.setattr(vm, "shipped_models", lambda: good)
    assert vm.load_model("default", runtime="torch").model_name == "default"
    bad = {"default": {"file": str(path), "sha256": "0" * 64}}
    monkeypatch.setattr(vm, "shipped_models", lambda: bad)
    for runtime in vm.RUNTIMES:
        with pytest.raises(CheckpointError, match="integrity"):
            vm.load_model("default", runtime=runtime)


@pytest.mark.parametrize("name", ["default", "default-baseline"])
def test_the_shipped_models_load_and_encode(name: str, images) -> None:
    if name not in vm.shipped_models():
        pytest.skip("no shipped models in this checkout yet")
    model = vm.load_model(name)
    codes = model.encode(images[:2])
    assert codes.shape == (2, (model.code_bits + 7) // 8)
    assert model.model_id == vm.shipped_models()[name]["sha256"]


def test_models_command_lists_the_registry(capsys: pytest.CaptureFixture) -> None:
    from vidhash.cli import main

    main(["models"])
    out = capsys.readouterr().out
    for name in vm.shipped_models():
        assert name in out
    # Every shipped weight says where it came from: the backbone is not "random".
    for entry in vm.shipped_models().values():
        assert "ImageNet" in entry["provenance"]["backbone"]
        assert entry["data"] and all(item["images"] > 0 for item in entry["data"])
    assert "backbone: ImageNet" in out and "neck + PSP: train-seg" in out
    main(["models", "--json"])
    assert json.loads(capsys.readouterr().out) == vm.shipped_models()
