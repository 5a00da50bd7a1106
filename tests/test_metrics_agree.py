"""One Hamming distance, one tie rule: ``train-hash`` and ``benchmark-hashing`` score alike.

Codes of 4 bits over dozens of items, so most items tie with others at every distance and
the tie rule decides much of each ranking. Class folders ``cat``, ``cat-big``, ``dog``
make the training set's order (round-robin over classes) and the file-path order differ,
and ``cat-big/`` sorts before ``cat/`` by path ('-' < '/') though after it by class name.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidhash import metrics
from vidhash.eval import metrics as bench
from vidhash.eval import protocols
from vidhash.index.store import codes as index_codes
from vidhash.train.datasets import ImageFolderSet
from vidhash.train.retrieval import database_keys, retrieval_map

BITS = 4
CLASSES = ("cat", "cat-big", "dog")


def _brute_hamming(x: np.ndarray, y: np.ndarray, code_bits: int) -> int:
    bits_x = "".join(f"{int(v):08b}" for v in x)[:code_bits]
    bits_y = "".join(f"{int(v):08b}" for v in y)[:code_bits]
    return sum(p != q for p, q in zip(bits_x, bits_y, strict=True))


@pytest.mark.parametrize("code_bits", [None, 4, 12, 13, 48])
def test_hamming_matches_a_bit_by_bit_count(code_bits):
    rng = np.random.default_rng(code_bits or 0)
    nbytes = 6 if code_bits is None else (code_bits + 7) // 8
    a = rng.integers(0, 256, (9, nbytes), dtype=np.uint8)  # padding bits set on purpose
    b = rng.integers(0, 256, (13, nbytes), dtype=np.uint8)
    length = code_bits or 8 * nbytes
    want = [[_brute_hamming(x, y, length) for y in b] for x in a]
    np.testing.assert_array_equal(metrics.hamming(a[:, None], b, code_bits), want)
    np.testing.assert_array_equal(metrics.hamming(a[3], b, code_bits), want[3])
    assert metrics.hamming(a, a, code_bits).tolist() == [0] * len(a)


def test_one_hamming_function():
    assert index_codes.hamming is metrics.hamming


def _case(seed: int = 0):
    """Query / database 4-bit codes with labels and file keys in training-set order."""
    rng = np.random.default_rng(seed)
    per_class, n_queries = 12, 15
    files = [Path("/data/train") / c / f"{i:03d}.png" for i in range(per_class) for c in CLASSES]
    labels = np.array([CLASSES.index(f.parent.name) for f in files])
    db_bits = rng.integers(0, 2, (len(files), BITS), dtype=np.uint8)
    q_bits = rng.integers(0, 2, (n_queries, BITS), dtype=np.uint8)
    q_labels = rng.integers(0, len(CLASSES), n_queries)
    return q_bits, q_labels, db_bits, labels, database_keys(files, "/data/train")


@pytest.mark.parametrize("topk", [1, 5, 20, None])
def test_train_hash_map_equals_benchmark_map_on_the_same_codes(topk):
    q_bits, q_labels, db_bits, db_labels, keys = _case()
    q_codes, db_codes = np.packbits(q_bits, axis=1), np.packbits(db_bits, axis=1)
    trained = retrieval_map(q_bits, q_labels, db_bits, db_labels, keys, topk)
    scores = bench.evaluate_retrieval(
        q_codes, q_labels, db_codes, db_labels, BITS, (topk,), 10, db_ids=keys
    )
    assert trained == scores.map_at["all" if topk is None else str(topk)]
    assert trained == bench.mean_average_precision(
        q_codes, q_labels, db_codes, db_labels, topk, BITS, db_ids=keys
    )
    # The tie rule is the database's key order, not the order it arrives in.
    shuffle = np.random.default_rng(1).permutation(len(keys))
    again = retrieval_map(
        q_bits, q_labels, db_bits[shuffle], db_labels[shuffle], [keys[i] for i in shuffle], topk
    )
    assert again == trained


def test_the_data_really_has_ties_that_decide_the_score():
    q_bits, q_labels, db_bits, db_labels, keys = _case()
    q_codes, db_codes = np.packbits(q_bits, axis=1), np.packbits(db_bits, axis=1)
    by_key = retrieval_map(q_bits, q_labels, db_bits, db_labels, keys, 5)
    by_arrival = metrics.mean_average_precision(q_codes, q_labels, db_codes, db_labels, 5, BITS)
    assert by_key != by_arrival  # the old train-hash score (database order) disagreed


def _grey_dataset(root: Path, train: int = 8, test: int = 3) -> dict[int, np.ndarray]:
    """PNG images of one grey level each (its number); returns grey level -> 4-bit code."""
    rng = np.random.default_rng(5)
    table, grey = {}, 0
    for split, n in (("train", train), ("test", test)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(
                    str(root / split / cls / f"{i:03d}.png"), np.full((40, 48, 3), grey, np.uint8)
                )
                table[grey] = np.packbits(rng.integers(0, 2, BITS, dtype=np.uint8))
                grey += 1
    return table


def test_train_hash_and_benchmark_hashing_agree_end_to_end(tmp_path):
    """The same image folder and codes through benchmark-hashing's protocol run and through
    train-hash's test-set mAP (ImageFolderSet order, database = train, queries = test)."""
    root = tmp_path / "ds"
    table = _grey_dataset(root)

    def encode(images: np.ndarray) -> np.ndarray:
        return np.stack([table[int(im[0, 0, 0])] for im in images])

    data = protocols.scan_image_folder(root)
    summary = protocols.run_protocol(
        data, "dlbhc", encode, {"model_id": "grey", "code_bits": BITS}, tmp_path / "out",
        queries_per_class=3, max_k=5, progress=False,
    )  # fmt: skip
    assert summary["n_queries"] == 9 and summary["n_database"] == 24

    train = ImageFolderSet.open(root / "train")
    test = ImageFolderSet.open(root / "test", classes=train.classes)

    def bits_of(files: list[Path]) -> np.ndarray:
        grey = [int(protocols.load_image(f)[0, 0, 0]) for f in files]
        return np.unpackbits(np.stack([table[g] for g in grey]), axis=1)[:, :BITS]

    q, db = (bits_of(test.files), test.targets), (bits_of(train.files), train.targets)
    keys = database_keys(train.files, train.root)
    for topk, name in ((5, "map@5"), (None, "map@all")):
        assert retrieval_map(*q, *db, keys, topk) == summary[name]
    in_train_order = metrics.mean_average_precision(
        np.packbits(q[0], axis=1), np.asarray(q[1]), np.packbits(db[0], axis=1),
        np.asarray(db[1]), 5, BITS,
    )  # fmt: skip
    assert in_train_order != summary["map@5"]  # without the shared keys they would differ
