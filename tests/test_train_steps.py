"""A few real training steps on tiny self-made sets: loss goes down, files come out right."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidhash.cli import main
from vidhash.models import load_model
from vidhash.models.checkpoint import load_checkpoint, read_header
from vidhash.train.datasets import Views, VOCSegmentation, merged_voc
from vidhash.train.hashing import HashConfig, train_hashing
from vidhash.train.seg import SegConfig, train_segmentation

skimage_data = pytest.importorskip("skimage.data")
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)


def _crops(photo: np.ndarray, n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    out = []
    for _ in range(n):
        y, x = rng.integers(0, h - size), rng.integers(0, w - size)
        out.append(np.ascontiguousarray(photo[y : y + size, x : x + size]))
    return out


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-like 32x32 JPEGs, two classes cut from two scikit-image photos."""
    root = tmp_path_factory.mktemp("imagefolder")
    photos = {"cat": skimage_data.chelsea(), "cup": skimage_data.coffee()}
    for split, n in (("train", 6), ("test", 2)):
        for k, (name, photo) in enumerate(photos.items()):
            (root / split / name).mkdir(parents=True)
            for i, crop in enumerate(_crops(photo, n, 96, seed=k * 10 + len(split))):
                small = np.asarray(Image.fromarray(crop).resize((32, 32)))
                Image.fromarray(small).save(root / split / name / f"{i:03d}.jpg", quality=90)
    return root


def _voc_root(root: Path, labels: list[str], photo: np.ndarray, seed: int) -> Path:
    """A VOC-layout set whose palette-PNG masks mark bright pixels as class 1 (255 border)."""
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    ids = []
    for i, crop in enumerate(_crops(photo, 6, 64, seed)):
        image_id = f"img{i}"
        Image.fromarray(crop).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        mask = (crop.mean(2) > crop.mean()).astype(np.uint8)
        mask[:, :2] = 255
        png = Image.fromarray(mask, mode="P")
        png.putpalette(PALETTE)
        png.save(root / "SegmentationClass" / f"{image_id}.png")
        ids.append(image_id)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:4]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[4:]) + "\n")
    (root / "labels.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture(scope="module")
def voc_roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("voc")
    return [
        _voc_root(base / "a", ["background", "cat"], skimage_data.chelsea(), 1),
        _voc_root(base / "b", ["sky", "cat"], skimage_data.astronaut(), 2),
    ]


def test_voc_palette_masks_and_merged_labels(voc_roots: list[Path]) -> None:
    single = VOCSegmentation.open(voc_roots[0], "train", size=32)
    image, mask = single[0]
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
    assert set(np.unique(mask)) <= {0, 1, 255}
    merged = merged_voc(voc_roots, "train", size=32)
    assert merged[0].labels == ["background", "cat", "sky"]
    _, mask_b = merged[1][0]
    assert set(np.unique(mask_b)) <= {2, 1, 255}  # b's 'sky' (0) -> 2, 'cat' (1) -> 1
    # Masks alone (what train-seg stacks without decoding images) are the same crops.
    assert np.array_equal(merged[1].mask(0), mask_b)
    views = Views(merged[1], 4, seed=3, size=32)
    assert all(np.array_equal(views.mask(k), views[k][1]) for k in range(len(views)))


def test_voc_without_labels_file_uses_pascal_voc_2012_classes(voc_roots: list[Path]) -> None:
    labels = voc_roots[0] / "labels.txt"
    saved = labels.read_text()
    labels.unlink()
    try:
        ds = VOCSegmentation.open(voc_roots[0], "val", size=32)
        assert len(ds.labels) == 21 and ds.labels[0] == "background" and ds.labels[8] == "cat"
    finally:
        labels.write_text(saved)


@pytest.fixture(scope="module")
def seg_checkpoint(voc_roots: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "seg.safetensors"
    cfg = SegConfig.from_options(
        data=[str(r) for r in voc_roots], out=str(out), decoder_channels=16, epochs=4,
        lr=0.05, lr_after=0.05, batch_size=4, device="cpu",
        cache_dir=str(out.parent / "cache"),
    )  # fmt: skip
    metrics = train_segmentation(cfg, log=lambda s: None)
    assert {"pixel_acc", "miou", "per_class_iou", "per_dataset"} <= set(metrics)
    return out


def test_segmentation_steps_lower_the_loss(seg_checkpoint: Path) -> None:
    header = read_header(seg_checkpoint)
    losses = [h["train_loss"] for h in header["train"]["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert header["arch"] == "psp-seg" and header["seg_classes"] == ["background", "cat", "sky"]


def test_baseline_hash_steps_lower_the_loss_and_report_map(
    image_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "baseline.safetensors"
    cfg = HashConfig.from_options(
        train_dir=str(image_folder / "train"), test_dir=str(image_folder / "test"),
        out=str(out), arch="baseline",
        objective="paper", bits=12, width=32, epochs=5, lr=0.05, lr_after=0.05, batch_size=4,
        device="cpu",
        cache_dir=str(tmp_path / "cache"), topk=5,
    )  # fmt: skip
    metrics = train_hashing(cfg, log=lambda s: None)
    history = read_header(out)["train"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert 0.0 <= metrics["map@5"] <= 1.0 and 0.0 <= metrics["map@all"] <= 1.0
    assert metrics["queries"] == 4 and metrics["database"] == 12
    model = load_model(str(out), runtime="torch")
    assert model.classes == ["cat", "cup"] and model.code_bits == 12


def test_psp_hash_cli_trains_and_resumes(
    image_folder: Path, seg_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "psp.safetensors"
    args = [
        "train-hash", "--train", str(image_folder / "train"), "--test", str(image_folder / "test"),
        "--out", str(out), "--arch", "psp", "--seg-checkpoint", str(seg_checkpoint),
        "--bits", "16", "--width", "32", "--lr", "0.05", "--batch-size", "4", "--device", "cpu",
        "--objective", "paper",
        "--cache-dir", str(tmp_path / "cache"), "--topk", "5",
    ]  # fmt: skip
    main([*args, "--epochs", "2"])
    main([*args, "--epochs", "3", "--resume"])
    printed = capsys.readouterr().out
    final = json.loads(printed[printed.rindex("{\n") :])
    assert set(final) >= {"test_acc", "map@5", "map@all"}
    header = read_header(out)
    assert [h["epoch"] for h in header["train"]["history"]] == [1, 2, 3]
    assert header["head"]["input"] == "stacked" and header["code_bits"] == 16
    frozen = load_model(str(out), runtime="torch")
    original, _ = load_checkpoint(seg_checkpoint)
    for name, tensor in original.decoder.state_dict().items():
        assert torch.equal(frozen.decoder.state_dict()[name], tensor), name
    codes = frozen.encode(np.zeros((2, 224, 224, 3), np.uint8))
    assert codes.shape == (2, 2)


def test_trainable_psp_and_trainable_backbone_paths(
    image_folder: Path, seg_checkpoint: Path, tmp_path: Path
) -> None:
    """--train-psp runs the PSP on cached maps; --train-backbone runs full forward passes."""
    common = dict(
        train_dir=str(image_folder / "train"), test_dir=str(image_folder / "test"), bits=12,
        width=16, epochs=2, lr=0.05, lr_after=0.05, batch_size=6, device="cpu",
        cache_dir=str(tmp_path / "cache"), topk=5, seg_checkpoint=str(seg_checkpoint),
    )  # fmt: skip
    psp_out = tmp_path / "psp-train.safetensors"
    train_hashing(
        HashConfig.from_options(out=str(psp_out), arch="psp", freeze_psp=False, **common), print
    )
    trained = load_model(str(psp_out), runtime="torch")
    original, _ = load_checkpoint(seg_checkpoint)
    stream = "streams.1.conv.weight"  # on the stacked path (the fusion conv is not)
    assert not torch.equal(
        trained.decoder.state_dict()[stream], original.decoder.state_dict()[stream]
    )
    assert torch.equal(trained.backbone.state_dict()["body._conv_stem.weight"],
                       original.backbone.state_dict()["body._conv_stem.weight"])  # fmt: skip
    full_out = tmp_path / "full.safetensors"
    train_hashing(
        HashConfig.from_options(
            out=str(full_out), arch="baseline", freeze_backbone=False, **common
        ),
        print,
    )
    assert len(read_header(full_out)["train"]["history"]) == 2


def test_distill_run_with_an_unlabelled_pool_records_data_and_provenance(
    image_folder: Path, seg_checkpoint: Path, tmp_path: Path
) -> None:
    """The default objective on labelled photos + an unlabelled pool (a photo folder and a
    real video): the loss goes down, and the header says what it was trained on and where
    every weight came from (the backbone's ImageNet source, not "random")."""
    import media

    pool = tmp_path / "pool"
    media.make_video(pool / "clip.mp4", codec="h264", seconds=3, fps=5, gop=5)
    media.make_image(pool / "photo.jpg", name="rocket", size=(120, 90))
    out = tmp_path / "distill.safetensors"
    cfg = HashConfig.from_options(
        train_dir=[str(image_folder / "train")], test_dir=str(image_folder / "test"),
        out=str(out), arch="psp",
        seg_checkpoint=str(seg_checkpoint), bits=16, width=32, pool=1, epochs=4,
        batch_size=8, lr=0.01, unlabelled=[str(pool)], views=2, device="cpu",
        cache_dir=str(tmp_path / "cache"), topk=5,
    )  # fmt: skip
    metrics = train_hashing(cfg, log=lambda s: None)
    header = read_header(out)
    history = header["train"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"train_cls", "train_sim", "train_quant", "train_balance"} <= set(history[0])
    sources = {d["source"]: d for d in header["data"]}
    assert sources[str(image_folder / "train")]["images"] == 12
    assert sources[f"unlabelled: {pool}"]["images"] == 1 + 3  # the photo + a frame a second
    assert "ImageNet" in header["provenance"]["backbone"]
    assert "train-seg" in header["provenance"]["neck + PSP"]
    assert header["backbone"]["source"].startswith("ImageNet")
    assert metrics["database"] == 12 and metrics["queries"] == 4
    # Same seed, same data: the same codes (the caches are reused, the run is repeatable).
    again = tmp_path / "again.safetensors"
    train_hashing(dataclasses.replace(cfg, out=str(again)), log=lambda s: None)
    images = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    first, second = load_model(str(out), runtime="torch"), load_model(str(again), runtime="torch")
    assert np.array_equal(first.encode(images), second.encode(images))
