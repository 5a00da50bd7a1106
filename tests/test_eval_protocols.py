"""Hashing protocols on a tiny generated ImageFolder: splits, reports, failures, caching."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidhash.errors import InputError, UsageError
from vidhash.eval import metrics, protocols

CLASSES = ("cat", "dog", "ship")


def make_dataset(root: Path, train: int = 8, test: int = 5) -> Path:
    """Per class a base colour plus noise, so a pixel hash separates classes imperfectly."""
    rng = np.random.default_rng(0)
    colours = {"cat": (200, 40, 40), "dog": (40, 200, 40), "ship": (40, 40, 200)}
    for split, n in (("train", train), ("test", test)):
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(
                    np.array(colours[cls]) + rng.normal(0, 60, (32, 32, 3)), 0, 255
                ).astype(np.uint8)
                cv2.imwrite(str(folder / f"{i:04d}.jpg"), img)
    return root


def average_hash_48(images: np.ndarray) -> np.ndarray:
    """A real perceptual hash (aHash on a 4x4 RGB thumbnail, 48 bits) as the encoder."""
    small = np.stack([cv2.resize(im, (4, 4), interpolation=cv2.INTER_AREA) for im in images])
    flat = small.reshape(len(images), -1).astype(np.float32)
    return np.packbits(flat >= flat.mean(1, keepdims=True), axis=1)


INFO = {"model_id": "a" * 64, "model_name": "ahash", "code_bits": 48}


def test_protocol_splits(tmp_path):
    data = protocols.scan_image_folder(make_dataset(tmp_path / "ds"))
    assert data.classes == list(CLASSES) and len(data.paths) == 3 * 13
    q, db = protocols.split_protocol(data, "dlbhc", queries_per_class=2, seed=0)
    assert len(q) == 6 and len(db) == 24
    assert set(data.split[q]) == {"test"} and set(data.split[db]) == {"train"}
    assert np.bincount(data.labels[q]).tolist() == [2, 2, 2]
    q1, db1 = protocols.split_protocol(data, "cifar10-1", queries_per_class=2, seed=0)
    assert np.array_equal(q, q1)  # same seed, same queries under both protocols
    assert len(db1) == 24 + 15 - 6 and not set(q1) & set(db1)
    q2, _ = protocols.split_protocol(data, "cifar10-1", queries_per_class=2, seed=1)
    assert not np.array_equal(q1, q2)
    _, capped = protocols.split_protocol(data, "dlbhc", 2, 0, database_per_class=3)
    assert np.bincount(data.labels[capped]).tolist() == [3, 3, 3]
    with pytest.raises(InputError, match="fewer than"):
        protocols.split_protocol(data, "dlbhc", queries_per_class=6)
    with pytest.raises(UsageError):
        protocols.split_protocol(data, "nope")


def test_run_protocol_writes_named_reports(tmp_path):
    data = protocols.scan_image_folder(make_dataset(tmp_path / "ds"))
    out = tmp_path / "out"
    summary = protocols.run_protocol(
        data, "cifar10-1", average_hash_48, INFO, out, queries_per_class=2, progress=False
    )
    assert summary["protocol"] == "cifar10-1" and summary["n_queries"] == 6
    assert summary["n_database"] == 33 and summary["code_bits"] == 48
    for suffix in ("summary.json", "precision-at-k.csv", "precision-at-k.png", "pr-curve.png"):
        assert (out / f"cifar10-1-{suffix}").stat().st_size > 0
    assert json.loads((out / "cifar10-1-summary.json").read_text())["n_database"] == 33
    csv = (out / "cifar10-1-precision-at-k.csv").read_text().splitlines()
    assert csv[0].startswith("# cifar10-1: 6 queries / 33 database")
    assert len(csv) == 2 + 33  # precision@K up to the database size
    # The scores are exactly the metrics module's on the same codes.
    q, db = protocols.split_protocol(data, "cifar10-1", queries_per_class=2)
    codes = average_hash_48(np.stack([protocols.load_image(p) for p in data.paths]))
    want = metrics.mean_average_precision(
        codes[q], data.labels[q], codes[db], data.labels[db], None, 48,
        db_ids=[str(data.paths[i]) for i in db],
    )  # fmt: skip
    assert summary["map@all"] == pytest.approx(want)
    assert 0.3 < summary["map@all"] <= 1.0  # colours separate classes better than chance


def test_broken_image_is_recorded_not_fatal(tmp_path):
    root = make_dataset(tmp_path / "ds")
    (root / "train" / "dog" / "9999.jpg").write_bytes(b"not a jpeg")
    data = protocols.scan_image_folder(root)
    summary = protocols.run_protocol(
        data, "dlbhc", average_hash_48, INFO, tmp_path / "out", queries_per_class=2,
        progress=False,
    )  # fmt: skip
    assert summary["failed_images"] == 1 and summary["n_database"] == 24
    assert "9999.jpg" in summary["errors"][0]


def test_codes_cached_across_protocols(tmp_path):
    data = protocols.scan_image_folder(make_dataset(tmp_path / "ds"))
    out = tmp_path / "out"
    protocols.run_protocol(data, "cifar10-1", average_hash_48, INFO, out, 2, progress=False)

    def must_not_run(images: np.ndarray) -> np.ndarray:
        raise AssertionError("images were encoded twice")

    summary = protocols.run_protocol(data, "dlbhc", must_not_run, INFO, out, 2, progress=False)
    assert summary["n_database"] == 24


def test_dataset_errors(tmp_path):
    archive = tmp_path / "cifar10-train.tar.xz"
    archive.write_bytes(b"xz")
    with pytest.raises(InputError, match="tar -xJf"):
        protocols.scan_image_folder(archive)
    with pytest.raises(InputError, match="tar -xJf"):
        protocols.scan_image_folder(tmp_path)  # holds only the archive
    with pytest.raises(InputError, match="not found"):
        protocols.scan_image_folder(tmp_path / "missing")
