"""The engine's cost model: per segment it answers by multi-index hashing where that is
predicted cheaper than a flat scan (clustered codes) and scans flat where it is not
(uniform random codes in sparse tables), and either way the answers are exactly the flat
scan's: same rows, same distances, ties in (distance, keyframe id) order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_search_engine import brute, clustered, make_segment

from vidhash.index.search import engine
from vidhash.index.store.codes import pad_to_64

N = 20_000  # rows: 16-bit tables, as segments of up to 4M rows have
QUERIES = 64  # a batch large enough to be worth a probe


@pytest.fixture(autouse=True)
def faiss_scans(monkeypatch) -> None:
    """Flat scans by FAISS, as for large batches (whether or not FAISS is imported yet):
    the flat price MIH has to beat is then the lowest, and does not depend on test order."""
    monkeypatch.setattr(engine, "FLAT_FAISS_MIN_WORK", 0)
    monkeypatch.setattr(engine, "FLAT_FAISS_LOADED_MIN_WORK", 0)


@pytest.fixture(scope="module")
def uniform():
    codes = np.random.default_rng(11).integers(0, 256, (N, 6), dtype=np.uint8)
    return codes, make_segment(codes, 48, videos=7, seed=11)


@pytest.fixture(scope="module")
def clustered_segment():
    codes = clustered(3 * N, 48, centres=300, flips=3, seed=12)  # ~200 near-copies a centre
    return codes, make_segment(codes, 48, videos=7, seed=12)


def queries_for(codes: np.ndarray, seed: int) -> np.ndarray:
    """Database codes (keyframe queries) and fresh uniform codes (far from any cluster)."""
    rng = np.random.default_rng(seed)
    fresh = rng.integers(0, 256, (QUERIES // 4, 6), dtype=np.uint8)
    return np.concatenate([codes[rng.integers(0, len(codes), QUERIES - len(fresh))], fresh])


def assert_flat_answers(seg, codes, queries, k, radius, blocked=(), uses=(None,)) -> None:
    """The engine's own choice (and any forced one in ``uses``) gives the brute-force flat
    scan's answer, query by query."""
    dead = np.asarray(blocked, np.int32)
    for use in uses:
        answers = engine.search_segment(seg, dead, pad_to_64(queries), k, radius, use=use)
        assert len(answers) == len(queries)
        for q, (d, r) in enumerate(answers):
            bd, br = brute(seg, codes, queries[q], k, radius, blocked)
            assert np.array_equal(r, br), (q, k, radius, blocked, use)
            assert np.array_equal(d, bd)


def test_the_chooser_scans_uniform_codes_flat(uniform) -> None:
    codes, seg = uniform
    for k, radius in [(10, None), (100, None), (10, 12)]:
        plan = engine.plan(seg, k, radius, QUERIES)
        assert plan.engine == "flat", plan
        assert plan.mih_ns > plan.flat_ns  # predicted, not assumed: the probe priced MIH
        assert seg.probes[(k, radius, plan.budget)] == plan.mih_ns  # cached for the segment


def test_the_chooser_keeps_mih_for_clustered_codes(clustered_segment) -> None:
    codes, seg = clustered_segment
    for k, radius in [(10, None), (1, None), (10, 3), (None, 2)]:
        plan = engine.plan(seg, k, radius, QUERIES)
        assert plan.engine == "mih", plan
        assert plan.mih_ns < plan.flat_ns / 3  # a clear win, not a coin toss at break-even


def test_small_batches_reuse_a_probe_or_try_mih_within_the_budget(
    clustered_segment, monkeypatch
) -> None:
    codes, seg = clustered_segment
    fresh = make_segment(codes, 48, videos=7, seed=12)  # no probe cached yet
    small = engine.plan(fresh, 7, None, 1)
    assert small.engine == "mih" and math.isnan(small.mih_ns) and not fresh.probes
    assert 0 < small.budget < len(fresh)  # each query bounded near one flat scan's cost
    big = engine.plan(fresh, 7, None, QUERIES)
    assert (7, None, big.budget) in fresh.probes
    assert engine.plan(fresh, 7, None, 2) == big  # any batch size: the cached probe
    no_tables = make_segment(codes[:500], 48, tables=False)
    assert engine.plan(no_tables, 10, None, QUERIES).engine == "flat"
    monkeypatch.setattr(engine, "FLAT_FAISS_MIN_WORK", 1 << 62)  # a numpy scan costs more:
    monkeypatch.setattr(engine, "FLAT_FAISS_LOADED_MIN_WORK", 1 << 62)  # a larger budget
    assert engine.plan(fresh, 7, None, 1).budget > small.budget


@pytest.mark.parametrize("kind", ["uniform", "clustered_segment"])
def test_either_choice_answers_exactly_like_the_flat_scan(kind, request) -> None:
    codes, seg = request.getfixturevalue(kind)
    queries = queries_for(codes, seed=3)
    for k, radius in [(1, None), (10, None), (57, None), (10, 4), (None, 3), (25, 9)]:
        assert_flat_answers(seg, codes, queries, k, radius)
    assert_flat_answers(seg, codes, queries, 30, None, blocked=[1, 3])
    assert_flat_answers(seg, codes, queries, None, 6, blocked=[0, 2, 4, 6])
    assert_flat_answers(seg, codes, queries[:3], 10, None)  # a small batch: MIH with budget


@pytest.mark.parametrize("by_faiss", [False, True])
def test_ties_keep_keyframe_id_order_under_both_engines(by_faiss, monkeypatch) -> None:
    """Four byte values: hundreds of rows tie at every distance; ids decide, as flat (the
    flat side by numpy, or by FAISS as large batches are)."""
    monkeypatch.setattr(engine, "FLAT_FAISS_MIN_WORK", 0 if by_faiss else 1 << 62)
    monkeypatch.setattr(engine, "FLAT_FAISS_LOADED_MIN_WORK", 0 if by_faiss else 1 << 62)
    codes = np.random.default_rng(13).integers(0, 4, (N, 6), dtype=np.uint8)
    seg = make_segment(codes, 48, videos=7, seed=13)
    queries = queries_for(codes, seed=4)
    every = (None, "mih", "flat")
    for k, radius in [(1, None), (10, None), (300, None), (40, 2)]:
        assert_flat_answers(seg, codes, queries, k, radius, uses=every)
        assert_flat_answers(seg, codes, queries, k, radius, blocked=[5], uses=every)


def test_segments_with_different_choices_merge_like_one_flat_scan(
    uniform, clustered_segment
) -> None:
    """One uniform and one clustered segment (flat and MIH) with dead inputs and an
    ``allowed`` filter: the merged answer is the flat scan's over every live row."""
    (ucodes, useg), (ccodes, cseg) = uniform, clustered_segment
    segs, all_codes = [useg, cseg], [ucodes, ccodes]
    assert [engine.plan(s, 10, None, QUERIES).engine for s in segs] == ["flat", "mih"]
    dead = [np.array([2], np.int32), np.array([0, 5], np.int32)]
    queries = np.concatenate([queries_for(ucodes, 5)[:32], queries_for(ccodes, 6)[:32]])
    rng = np.random.default_rng(7)
    allowed = [np.unique(rng.integers(0, len(s), len(s) // 3)) for s in segs]
    for k, radius, filt in [(10, None, None), (None, 4, None), (20, None, allowed),
                            (None, 8, allowed)]:  # fmt: skip
        got = engine.search(segs, dead, pad_to_64(queries), k, radius, filt)
        for q, (d, s, r) in enumerate(got):
            every = []
            for i, seg in enumerate(segs):
                bd, br = brute(seg, all_codes[i], queries[q], None, radius, dead[i])
                if filt is not None:
                    keep = np.isin(br, filt[i])
                    bd, br = bd[keep], br[keep]
                every += [
                    (int(x), bytes(seg.ids[y]), i, int(y)) for x, y in zip(bd, br, strict=True)
                ]
            every.sort()
            expected = every if k is None else every[:k]
            got_q = list(zip(d.tolist(), s.tolist(), r.tolist(), strict=True))
            assert got_q == [(x, i, y) for x, _, i, y in expected], (q, k, radius)
