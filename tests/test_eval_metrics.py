"""AP@K / MAP / Hamming (vidhash.metrics) and the benchmark scores (vidhash.eval.metrics)
against hand-computed cases and a plain-Python brute force."""

from __future__ import annotations

import numpy as np
import pytest

from vidhash import metrics
from vidhash.eval import metrics as bench


def _pack(bits: list[list[int]]) -> np.ndarray:
    return np.packbits(np.array(bits, dtype=np.uint8), axis=1)


@pytest.mark.parametrize(
    ("relevance", "k", "expected"),
    [
        ([1, 0, 1, 0], None, (1 / 1 + 2 / 3) / 2),
        ([1, 0, 1, 0], 4, (1 / 1 + 2 / 3) / 2),
        ([0, 1, 1], 2, (1 / 2) / 1),  # R_K counts only the top K
        ([0, 1, 1], 3, (1 / 2 + 2 / 3) / 2),
        ([1, 1, 1], 2, 1.0),
        ([0, 0, 0, 0], 3, 0.0),  # no relevant item: AP = 0, not NaN
        ([0, 0, 0, 1], 3, 0.0),  # relevant item only beyond K
        ([], None, 0.0),
    ],
)
def test_average_precision_hand_computed(relevance, k, expected):
    assert metrics.average_precision_at_k(relevance, k) == pytest.approx(expected)


def test_average_precision_rejects_bad_k():
    with pytest.raises(ValueError):
        metrics.average_precision_at_k([1, 0], 0)


def test_hamming_matches_popcount():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (7, 6), dtype=np.uint8)
    b = rng.integers(0, 256, (11, 6), dtype=np.uint8)
    got = metrics.hamming(a[:, None], b)
    want = [
        [sum(bin(x ^ y).count("1") for x, y in zip(qa, db, strict=True)) for db in b] for qa in a
    ]
    np.testing.assert_array_equal(got, want)
    # Unpadded 12-bit codes: only the first 12 bits count.
    assert metrics.hamming(a[:, None, :2], b[:, :2], code_bits=12).max() <= 12


def test_ties_broken_by_id_then_distance():
    query = _pack([[0] * 8])
    # Items 0 and 1 are both at distance 1; item 2 at distance 0.
    db = _pack([[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0], [0] * 8])
    labels_q = np.array([5])
    labels_db = np.array([5, 0, 0])  # only item 0 is relevant
    # ids make item 1 come before item 0 -> ranking [2, 1, 0] -> rel [0, 0, 1]
    ids = np.array(["kf-c", "kf-b", "kf-a"])
    assert metrics.mean_average_precision(query, labels_q, db, labels_db, 2, db_ids=ids) == 0.0
    full = metrics.mean_average_precision(query, labels_q, db, labels_db, None, db_ids=ids)
    assert full == pytest.approx(1 / 3)
    # ids that put item 0 first among the tie -> rel [0, 1, 0]
    ids = np.array(["kf-a", "kf-b", "kf-c"])
    assert metrics.mean_average_precision(query, labels_q, db, labels_db, 2, db_ids=ids) == 0.5
    # Without ids the position breaks the tie, the same as ids in position order.
    assert metrics.mean_average_precision(query, labels_q, db, labels_db, 2) == 0.5


def _brute_force_map(q, ql, d, dl, topk, multilabel=False):
    """The definition, written as literally as possible."""
    aps = []
    for i in range(len(q)):
        dists = []
        for j in range(len(d)):
            dist = sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(q[i], d[j], strict=True))
            dists.append((dist, j))
        dists.sort()
        ranked = [j for _, j in dists][: topk or len(d)]
        hits, precision_sum = 0, 0.0
        for rank, j in enumerate(ranked, start=1):
            relevant = bool((ql[i] & dl[j]).any()) if multilabel else ql[i] == dl[j]
            if relevant:
                hits += 1
                precision_sum += hits / rank
        aps.append(precision_sum / hits if hits else 0.0)
    return float(np.mean(aps))


@pytest.mark.parametrize("topk", [1, 5, 20, None])
def test_map_matches_brute_force(topk):
    rng = np.random.default_rng(topk or 0)
    q = rng.integers(0, 256, (15, 2), dtype=np.uint8)  # 16-bit codes: plenty of ties
    d = rng.integers(0, 256, (60, 2), dtype=np.uint8)
    ql = rng.integers(0, 4, 15)
    dl = rng.integers(0, 4, 60)
    want = _brute_force_map(q, ql, d, dl, topk)
    assert metrics.mean_average_precision(q, ql, d, dl, topk) == pytest.approx(want)
    scores = bench.evaluate_retrieval(q, ql, d, dl, 16, topks=(topk,), max_k=60)
    assert scores.map_at["all" if topk is None else str(topk)] == pytest.approx(want)


def test_multilabel_map_matches_brute_force():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (10, 1), dtype=np.uint8)
    d = rng.integers(0, 256, (40, 1), dtype=np.uint8)
    ql = rng.random((10, 5)) < 0.3
    dl = rng.random((40, 5)) < 0.3
    want = _brute_force_map(q, ql, d, dl, 10, multilabel=True)
    assert metrics.mean_average_precision(q, ql, d, dl, 10) == pytest.approx(want)


def test_precision_at_k_and_pr_curve():
    rng = np.random.default_rng(4)
    q = rng.integers(0, 256, (6, 1), dtype=np.uint8)
    d = rng.integers(0, 256, (30, 1), dtype=np.uint8)
    ql = rng.integers(0, 3, 6)
    dl = rng.integers(0, 3, 30)
    curve = bench.precision_at_k(q, ql, d, dl, max_k=30)
    dist = metrics.hamming(q[:, None], d)
    for k in (1, 7, 30):
        want = []
        for i in range(6):
            order = sorted(range(30), key=lambda j, i=i: (dist[i, j], j))[:k]
            want.append(np.mean([ql[i] == dl[j] for j in order]))
        assert curve[k - 1] == pytest.approx(np.mean(want))
    radii, precision, recall = bench.precision_recall_by_radius(q, ql, d, dl)
    assert list(radii) == list(range(9))
    # At the full radius everything is retrieved: recall 1, precision = share of relevant.
    assert recall[-1] == pytest.approx(1.0)
    share = np.mean([(dl == ql[i]).mean() for i in range(6)])
    assert precision[-1] == pytest.approx(share)
    assert np.all(np.diff(recall) >= -1e-12)  # recall never falls as the radius grows


def test_exclusion_mask_drops_items():
    dist = np.array([[0, 1, 2, 3]])
    excl = np.array([[True, False, True, False]])
    order, valid = metrics.rank_by_distance(dist, np.arange(4), 2, excl)
    assert order.tolist() == [[1, 3]] and valid.all()
    order, valid = metrics.rank_by_distance(dist, np.arange(4), 4, excl)
    assert valid.tolist() == [[True, True, False, False]]
