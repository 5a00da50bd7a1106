"""ONNX Runtime runs the same network as torch: parity, graphs, identity, no torch needed.

Parity is measured on real photos (scikit-image's, cropped as keyframes are): at most 1
code bit in 10,000 differs and the float outputs agree to 1e-4, for both shipped models.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import media
from vidhash import models as vm
from vidhash.errors import CheckpointError
from vidhash.media import read_rgb
from vidhash.transforms import center_crop_resize

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """216 keyframe-like crops: windows of six real photos at several places and scales."""
    rng = np.random.default_rng(7)
    out = []
    for name in PHOTOS:
        image = media.photo(name)
        height, width = image.shape[:2]
        for _ in range(36):
            side = int(rng.integers(min(height, width) // 3, min(height, width) + 1))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            window = np.ascontiguousarray(image[top : top + side, left : left + side])
            out.append(center_crop_resize(window[:, ::-1] if rng.random() < 0.5 else window))
    return np.stack(out)


@pytest.mark.parametrize("name", vm.SHIPPED_NAMES)
def test_onnx_runtime_matches_torch_on_real_photos(name: str, crops: np.ndarray) -> None:
    onnx_net = vm.load_model(name, runtime="onnx")
    torch_net = vm.load_model(name, runtime="torch")
    assert onnx_net.model_id == torch_net.model_id == vm.shipped_models()[name]["sha256"]
    assert (onnx_net.code_bits, onnx_net.descriptor_dims) == (
        torch_net.code_bits,
        torch_net.descriptor_dims,
    )
    a, b = onnx_net.embed(crops), torch_net.embed(crops)
    bits = np.unpackbits(a.codes) != np.unpackbits(b.codes)
    assert bits.size >= 10_000 and bits.sum() <= bits.size // 10_000
    assert np.abs(a.descriptors.astype(np.float32) - b.descriptors.astype(np.float32)).max() < 2e-3
    for start in range(0, len(crops), 54):  # the float outputs, before rounding
        (r1, d1), (r2, d2) = (
            onnx_net.floats(crops[start : start + 4]),
            torch_net.floats(crops[start : start + 4]),
        )
        assert np.abs(r1 - r2).max() < 1e-4 and np.abs(d1 - d2).max() < 1e-4


def test_a_checkpoints_graph_is_exported_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crops: np.ndarray
) -> None:
    """A trained checkpoint (a pool-4 PSP head) gets its graph on first use; later loads
    read it; a graph beside the checkpoint wins; a graph of another model is refused."""
    import torch

    from tests.test_models_checkpoint import HEADER
    from vidhash.models.backbones import get_backbone
    from vidhash.models.checkpoint import save_checkpoint
    from vidhash.models.nets import PSPHashNet

    monkeypatch.setenv("VIDHASH_CACHE", str(tmp_path / "cache"))
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = PSPHashNet(get_backbone("efficientnet_lite0"), 7, 32, 48, 3, 64, "both").eval()
        paths.append(tmp_path / f"net{seed}.safetensors")
        save_checkpoint(net, paths[-1], HEADER)
    first = vm.load_model(str(paths[0]), runtime="onnx")
    cached = vm.graph_path(str(paths[0]), first.model_id)
    assert cached.parent == tmp_path / "cache" / "onnx" and cached.is_file()
    stamp = cached.stat().st_mtime_ns
    again = vm.load_model(str(paths[0]), runtime="onnx")
    assert cached.stat().st_mtime_ns == stamp
    reference = vm.load_model(str(paths[0]), runtime="torch")
    agree = np.unpackbits(again.encode(crops[:32])) == np.unpackbits(reference.encode(crops[:32]))
    assert agree.mean() > 0.999
    (tmp_path / "net1.onnx").write_bytes(cached.read_bytes())  # net0's graph beside net1
    with pytest.raises(CheckpointError, match="another model"):
        vm.load_model(str(paths[1]), runtime="onnx")
    from vidhash.cli import main

    main(["models", "--export", str(paths[1])])  # its own graph, beside it
    assert vm.graph_path(str(paths[1]), "x") == tmp_path / "net1.onnx"
    assert vm.load_model(str(paths[1]), runtime="onnx").encode(crops[:2]).shape == (2, 6)


def test_a_damaged_shipped_graph_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = vm.shipped_models()
    registry["default"] = {**registry["default"], "graph_sha256": "0" * 64}
    monkeypatch.setattr(vm, "shipped_models", lambda: registry)
    with pytest.raises(CheckpointError, match="graph default.onnx is missing or fails"):
        vm.load_model("default", runtime="onnx")


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert vm.default_runtime() == "onnx"
    monkeypatch.setenv("VIDHASH_RUNTIME", "torch")
    assert vm.default_runtime() == "torch"
    monkeypatch.setenv("VIDHASH_RUNTIME", "tensorflow")
    with pytest.raises(Exception, match="VIDHASH_RUNTIME must be one of"):
        vm.default_runtime()


TORCH_SIDE = (
    "vidhash.models.backbones",
    "vidhash.models.lite",
    "vidhash.models.neck",
    "vidhash.models.psp",
    "vidhash.models.nets",
    "vidhash.models.descriptor",
    "vidhash.models.checkpoint",
    "vidhash.models.graph",
    "vidhash.train",
    "vidhash.cli.train_hash",
    "vidhash.cli.train_seg",
    "vidhash.cli._train",
    "vidhash.cli.fit_descriptor",
)


def test_every_module_but_the_torch_side_imports_without_torch() -> None:
    import pkgutil

    import vidhash

    names = [
        m.name
        for m in pkgutil.walk_packages(vidhash.__path__, "vidhash.")
        if not m.name.startswith(TORCH_SIDE) and not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, sys; sys.modules.update(torch=None, torchvision=None)\n"
        f"for name in {names!r}: importlib.import_module(name)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(names) > 60


NO_TORCH = (
    "import sys; sys.modules.update(torch=None, torchvision=None); "
    "from vidhash.cli import main; sys.argv[0] = 'vidhash'; main()"
)


def vidhash_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a process where ``import torch`` fails, as in a plain install."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("VIDHASH_RUNTIME", None)
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_index_and_search_without_torch(tmp_path: Path, default_model) -> None:
    """A plain install (no torch) indexes, searches by image and by frame, and its codes
    are the torch runtime's (the index it builds is searched by torch's model too)."""
    from vidhash.query import Index

    videos = tmp_path / "videos"
    videos.mkdir()
    media.make_video(videos / "a.mp4", seconds=4.0, size=(160, 96))
    media.make_image(videos / "still.jpg", name="chelsea", size=(160, 120))
    out = tmp_path / "index"
    done = vidhash_without_torch(
        "index", str(videos), "--out", str(out), "--no-progress", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    query = tmp_path / "query.jpg"
    media.make_image(query, name="chelsea", size=(160, 120))
    found = vidhash_without_torch(
        "search", str(out), "--image", str(query), "-k", "1", cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    assert "still.jpg" in found.stdout
    index = Index.open(out)
    assert index.meta["model_id"] == default_model.model_id
    hit = index.search_image(query, k=1)[0]  # the torch-free index, searched here
    assert hit.video_path.endswith("still.jpg") and hit.distance <= 1
    crop = center_crop_resize(read_rgb(query))
    torch_code = default_model.encode(crop[None])[0]
    stored = index.code_of(hit.keyframe_id)
    assert (np.unpackbits(stored) != np.unpackbits(torch_code)).sum() <= 1


def test_a_model_card_reads_identity_and_shape_without_a_runtime() -> None:
    card = vm.model_card("default")
    net = vm.load_model("default")
    assert (card.model_id, card.model_name, card.code_bits, card.descriptor_dims) == (
        net.model_id,
        net.model_name,
        net.code_bits,
        net.descriptor_dims,
    )
    import torch

    assert vm.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert vm.resolve_device("cpu") == "cpu"
