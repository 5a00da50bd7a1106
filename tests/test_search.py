"""Exact Hamming search: self-match, (distance, id) ties, radius, exclusion, batches."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_index_helpers import build_index

from vidhash.index.search.flat import HammingSearcher
from vidhash.index.search.index import Hit, Index
from vidhash.index.store.codes import hamming


def brute_force(codes: np.ndarray, query: np.ndarray, k: int, allowed=None):
    dist = hamming(query, codes)
    rows = np.arange(len(codes))
    if allowed is not None:
        dist, rows = dist[allowed], rows[allowed]
    order = np.lexsort((rows, dist))[:k]
    return dist[order], rows[order]


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_is_exact_with_heavy_ties(threads: int) -> None:
    """Codes over 4 byte values: hundreds tie at the k-th distance; order must be by row."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, (3000, 6), dtype=np.uint8)
    queries = rng.integers(0, 4, (40, 6), dtype=np.uint8)
    engine = HammingSearcher(codes)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        for k in (1, 10, 57):
            d, r = engine.search(queries, k)
            for q in range(len(queries)):
                bd, br = brute_force(codes, queries[q], k)
                assert np.array_equal(d[q], bd) and np.array_equal(r[q], br)
            # a single query too (FAISS may split the database across threads then)
            d1, r1 = engine.search(queries[0], k)
            assert np.array_equal(r1[0], brute_force(codes, queries[0], k)[1])
    finally:
        faiss.omp_set_num_threads(previous)


def test_engine_k_larger_than_database() -> None:
    codes = np.arange(12, dtype=np.uint8).reshape(2, 6)
    d, r = HammingSearcher(codes).search(codes[0], 5)
    assert r[0].tolist() == [0, 1, -1, -1, -1]
    assert d[0, 0] == 0


def test_keyframe_finds_itself_first(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=3, per_video=6)
    index = Index.open(tmp_path / "idx")
    assert len(index) == 18
    for kid in index.keyframes["keyframe_id"]:
        hits = index.search(index.code_of(kid), k=3)
        assert hits[0].keyframe_id == kid and hits[0].distance == 0
        assert hits[0].video_path.startswith("videos/clip")


def test_ties_broken_by_distance_then_keyframe_id(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=6, per_video=20, alphabet=2, seed=5)
    index = Index.open(tmp_path / "idx")
    codes = np.stack([index.code_of(k) for k in index.keyframes["keyframe_id"]])
    ids = index.keyframes["keyframe_id"].to_numpy()
    query = codes[7]
    hits = index.search(query, k=25)
    dist = hamming(query, codes)
    expected = sorted(zip(dist.tolist(), ids.tolist(), strict=True))[:25]
    assert [(h.distance, h.keyframe_id) for h in hits] == expected
    assert len({h.distance for h in hits}) < len(hits)  # the test really has ties


def test_batch_equals_single_queries(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=4, per_video=10, alphabet=3, seed=6)
    index = Index.open(tmp_path / "idx")
    queries = np.stack([index.code_of(k) for k in index.keyframes["keyframe_id"][:8]])
    batch = index.search(queries, k=7)
    for q in range(len(queries)):
        assert batch[q] == index.search(queries[q], k=7)


def test_one_code_gives_one_list_and_a_batch_a_list_per_query(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=2, per_video=5, alphabet=3, seed=9)
    index = Index.open(tmp_path / "idx")
    kid = index.keyframes["keyframe_id"].iat[3]
    code = index.code_of(kid)
    one = index.search(code, k=4)
    assert one and all(isinstance(h, Hit) for h in one) and one[0].keyframe_id == kid
    assert index.search(code[None], k=4) == [one]  # a batch of one
    assert index.search(code.tobytes(), k=4) == one
    assert index.search_ids(kid, k=4) == one
    assert index.search_ids([kid], k=4) == [one]


def test_radius(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=4, per_video=25, alphabet=4, seed=7)
    index = Index.open(tmp_path / "idx")
    codes = np.stack([index.code_of(k) for k in index.keyframes["keyframe_id"]])
    query = codes[0]
    dist = hamming(query, codes)
    radius = int(np.sort(dist)[12])
    within = index.search(query, k=None, radius=radius)
    assert len(within) == int((dist <= radius).sum())
    assert all(h.distance <= radius for h in within)
    top = index.search(query, k=5, radius=radius)
    assert top == within[:5]
    assert index.search(query, k=10, radius=0)[0].distance == 0
    with pytest.raises(ValueError):
        index.search(query, k=None, radius=None)


def test_exclusion_shared_and_per_query(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=5, per_video=8, alphabet=4, seed=8)
    index = Index.open(tmp_path / "idx")
    frame = index.keyframes
    codes = np.stack([index.code_of(k) for k in frame["keyframe_id"]])
    vids = frame["video_id"].to_numpy()
    first, second = sorted(set(vids))[:2]
    hits = index.search(codes[:3], k=40, exclude_video_ids={first})
    for q, q_hits in enumerate(hits):
        assert all(h.video_id != first for h in q_hits)
        _, rows = brute_force(codes, codes[q], 40, allowed=vids != first)
        assert [h.keyframe_id for h in q_hits] == frame["keyframe_id"].to_numpy()[rows].tolist()
    per_query = index.search(codes[:2], k=40, exclude_video_ids=[{first}, {second, first}])
    assert all(h.video_id != first for h in per_query[0])
    assert all(h.video_id not in (first, second) for h in per_query[1])
    assert any(h.video_id == second for h in per_query[0])
    own = index.search_ids(list(frame["keyframe_id"][:4]), k=10, exclude_same_video=True)
    for kid, q_hits in zip(frame["keyframe_id"][:4], own, strict=True):
        video = frame.loc[frame["keyframe_id"] == kid, "video_id"].item()
        assert q_hits and all(h.video_id != video for h in q_hits)


def test_wrong_code_width_is_an_error(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=1, per_video=2)
    index = Index.open(tmp_path / "idx")
    with pytest.raises(ValueError, match="bytes"):
        index.search(np.zeros(8, np.uint8))
    with pytest.raises(KeyError):
        index.code_of("nope")


def test_vidhash_index_is_the_index_plus_model_queries() -> None:
    import vidhash
    from vidhash.query import Index as QueryIndex

    assert vidhash.Index is QueryIndex and issubclass(vidhash.Index, Index)


def test_empty_index_searches_to_nothing(tmp_path: Path) -> None:
    from test_index_helpers import MODEL

    from vidhash.index import IndexStore

    IndexStore.open(tmp_path / "idx", model_meta=MODEL, create=True).close()
    index = Index.open(tmp_path / "idx")
    assert len(index) == 0
    assert index.search(np.zeros((2, 6), np.uint8), k=5) == [[], []]
    assert index.search(np.zeros(6, np.uint8), k=None, radius=3) == []


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    nbytes=st.sampled_from([1, 2, 6, 8, 9]),
    alphabet=st.sampled_from([2, 16, 256]),
    k=st.integers(1, 40),
    radius=st.one_of(st.none(), st.integers(0, 20)),
    excluded=st.integers(0, 5),
    seed=st.integers(0, 2**31),
)
def test_engine_matches_brute_force(n, nbytes, alphabet, k, radius, excluded, seed) -> None:
    """Any code length, size, k, radius and exclusion: exactly the brute-force answer."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, alphabet, (n, nbytes), dtype=np.uint8)
    query = rng.integers(0, alphabet, nbytes, dtype=np.uint8)
    allowed = None
    if excluded:
        allowed = (np.arange(n) % 6) != excluded  # drop every row of one "video"
    engine = HammingSearcher(codes)
    d, r = engine.search(query, k, allowed)
    bd, br = brute_force(codes, query, k, allowed)
    keep = r[0] >= 0
    assert np.array_equal(r[0][keep], br) and np.array_equal(d[0][keep], bd)
    if radius is not None:
        ((rd, rr),) = engine.range(query[None], radius, allowed)
        dist = hamming(query, codes)
        mask = dist <= radius if allowed is None else (dist <= radius) & allowed
        expected = np.lexsort((np.flatnonzero(mask), dist[mask]))
        assert np.array_equal(rr, np.flatnonzero(mask)[expected])
        assert np.array_equal(rd, dist[mask][expected])
