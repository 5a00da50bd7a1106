"""The search engine over segments: multi-index hashing and flat scans give exactly what a
brute-force scan gives (same rows, distances and (distance, keyframe id) order), on
random and clustered codes full of ties, with radius, exclusions, k past the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidhash.index.search import engine, mih
from vidhash.index.search.segment import NULLS, ROW_ARRAYS, assemble, fixed_ids, merge, words
from vidhash.index.store.codes import hamming, pad_to_64


def make_segment(
    codes: np.ndarray, code_bits: int, videos: int = 5, tables: bool = True, seed=0, bits=None
):
    """A segment of these codes (ids shuffled, so row order != input order); ``bits``: the
    MIH substring length (by the number of rows when None)."""
    rng = np.random.default_rng(seed)
    n = len(codes)
    ids = [f"{rng.integers(0, 1 << 40):010x}-{i:09d}" for i in range(n)]
    padded = np.zeros((n, 8 * words(code_bits)), np.uint8)
    padded[:, : codes.shape[1]] = codes
    rows = {
        "codes": padded,
        "ids": fixed_ids(ids),
        "video": (np.arange(n) % videos).astype(np.int32),
        "pts": np.arange(n, dtype=np.float64),
        **{name: np.zeros(n, dtype) for name, dtype in NULLS.items()},
        "image": np.zeros(n, np.uint8),
    }
    assert set(rows) == set(ROW_ARRAYS)
    return assemble(
        code_bits,
        rows,
        {},
        [f"v{i}.mp4" for i in range(videos)],
        [f"{i:064x}" for i in range(videos)],
        np.zeros((videos, 2), np.int64),
        mih_min_rows=0 if tables else 1 << 60,
        mih_bits=bits,
    )


def clustered(n: int, code_bits: int, centres: int, flips: int, seed: int) -> np.ndarray:
    """Codes shaped like real ones: a centre each, with up to ``flips`` random bits flipped."""
    rng = np.random.default_rng(seed)
    nbytes = (code_bits + 7) // 8
    base = rng.integers(0, 2, (centres, code_bits), dtype=np.uint8)
    bits = base[rng.integers(0, centres, n)]
    for _ in range(flips):
        which = rng.integers(0, code_bits, n)
        flip = rng.random(n) < 0.7
        bits[np.arange(n)[flip], which[flip]] ^= 1
    return np.packbits(bits, axis=1)[:, :nbytes]


def brute(seg, codes: np.ndarray, query: np.ndarray, k, radius, blocked=()):
    """The flat answer over one segment's rows: (distance, keyframe id) order."""
    order_codes = seg.arrays["codes"][:, : codes.shape[1]]
    dist = hamming(query, order_codes)
    rows = np.arange(len(seg))
    keep = ~np.isin(seg.video, np.asarray(blocked, np.int64))
    if radius is not None:
        keep &= dist <= radius
    rows = rows[keep]
    rows = rows[np.lexsort((rows, dist[rows]))]  # rows are in id order: row = id tie-break
    if k is not None:
        rows = rows[:k]
    return dist[rows], rows


def check(seg, codes, queries, k, radius, blocked=()):
    """The engine's choice, forced MIH and forced flat all give the brute-force answer."""
    padded = pad_to_64(queries)
    for use in (None, "mih", "flat"):
        answers = engine.search_segment(
            seg, np.asarray(blocked, np.int32), padded, k, radius, use=use
        )
        for q, (d, r) in enumerate(answers):
            bd, br = brute(seg, codes, queries[q], k, radius, blocked)
            assert np.array_equal(r, br), (q, k, radius, use)
            assert np.array_equal(d, bd)
            assert d.dtype == np.int32 and r.dtype == np.int64


@pytest.mark.parametrize("sort_all", [0, 1 << 30])
@pytest.mark.parametrize("kind", ["random", "clustered", "ties"])
def test_mih_equals_brute_force(kind: str, sort_all: int, monkeypatch) -> None:
    """Both ways of picking answers from the candidates: query by query (from the k*m
    nearest) and one sort for the batch."""
    monkeypatch.setattr(mih, "_SORT_ALL", sort_all)
    rng = np.random.default_rng(7)
    if kind == "random":
        codes = rng.integers(0, 256, (3000, 6), dtype=np.uint8)
    elif kind == "clustered":
        codes = clustered(3000, 48, centres=30, flips=3, seed=1)
    else:  # 4 byte values: hundreds of codes tie at every distance
        codes = rng.integers(0, 4, (3000, 6), dtype=np.uint8)
    seg = make_segment(codes, 48)
    assert seg.tables is not None and len(seg.tables.spec) == 3
    queries = np.concatenate([codes[:20], rng.integers(0, 256, (5, 6), dtype=np.uint8)])
    for k, radius in [(1, None), (10, None), (57, None), (5000, None), (10, 0), (None, 0),
                      (None, 4), (25, 9), (None, 13)]:  # fmt: skip
        check(seg, codes, queries, k, radius)
    check(seg, codes, queries, 30, None, blocked=[1, 3])
    check(seg, codes, queries, None, 6, blocked=[0])


def test_mih_with_24_bit_substrings_and_shells_too_large_to_probe() -> None:
    """From 4M rows the tables use 2 x 24 bits; a round of more than MAX_SHELL buckets (a
    large radius) hands the query to the flat scan. Both exact."""
    assert mih.substring_bits(4_000_000) == 24 and mih.substring_bits(3_999_999) == 16
    codes = clustered(4000, 48, centres=40, flips=3, seed=9)
    seg = make_segment(codes, 48, bits=24)
    assert seg.tables.spec == [(0, 24), (24, 24)]
    queries = np.concatenate([codes[:10], clustered(5, 48, centres=40, flips=3, seed=10)])
    for k, radius in [(10, None), (1, None), (200, None), (None, 3), (10, 30), (None, 25)]:
        check(seg, codes, queries, k, radius)
    far = pad_to_64(np.full((1, 6), 0x5A, np.uint8))
    answers, _ = mih.search(seg.tables, seg.video, far, None, 40, None, budget=1 << 40)
    assert answers == [None]  # radius 40 needs rounds of C(24, 20+) buckets: flat instead


def test_mih_hands_back_queries_past_its_budget_and_flat_answers_them() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, (2000, 6), dtype=np.uint8)
    seg = make_segment(codes, 48)
    queries = pad_to_64(codes[:8])
    answers, work = mih.search(seg.tables, seg.video, queries, 50, None, None, budget=40)
    assert (
        answers.count(None) > 0 and work.candidates > 0
    )  # uniform codes: nothing near, many probes
    answers, _ = mih.search(seg.tables, seg.video, queries, 1, None, None, budget=1 << 40)
    assert all(a is not None and a[0][0] == 0 for a in answers)  # each finds itself
    check(seg, codes, codes[:8], 50, None)  # the engine falls back to a flat scan: exact


def test_only_blocked_rows_k_past_the_end_and_empty() -> None:
    codes = np.random.default_rng(3).integers(0, 4, (300, 6), dtype=np.uint8)
    seg = make_segment(codes, 48, videos=3)
    check(seg, codes, codes[:4], 1000, None)
    check(seg, codes, codes[:4], 10, None, blocked=[0, 1, 2])  # nothing allowed
    check(seg, codes, codes[:4], 400, 5, blocked=[0, 2])
    empty = make_segment(np.zeros((0, 6), np.uint8), 48)
    for k, radius in [(5, None), (None, 3)]:
        got = engine.search([empty], [np.zeros(0, np.int32)], pad_to_64(codes[:2]), k, radius)
        assert len(got) == 2 and all(len(r) == 0 for _, _, r in got)
    assert engine.search([], [], pad_to_64(codes[:2]), 5, None)[1][2].size == 0


def test_numpy_and_faiss_flat_scans_agree(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 4, (5000, 6), dtype=np.uint8)
    seg = make_segment(codes, 48, tables=False)
    assert seg.tables is None
    queries = codes[:12]
    for k, blocked in [(1, ()), (10, ()), (77, [2]), (6000, [1, 4])]:
        monkeypatch.setattr(engine, "FLAT_FAISS_MIN_WORK", 1 << 62)
        monkeypatch.setattr(engine, "FLAT_FAISS_LOADED_MIN_WORK", 1 << 62)
        check(seg, codes, queries, k, None, blocked)
        monkeypatch.setattr(engine, "FLAT_FAISS_MIN_WORK", 0)
        monkeypatch.setattr(engine, "FLAT_FAISS_LOADED_MIN_WORK", 0)
        check(seg, codes, queries, k, None, blocked)
        check(seg, codes, queries, k, 3, blocked)


def test_segments_merge_by_distance_then_keyframe_id() -> None:
    """Three segments (one with tables, two flat) with ties across them: ids decide."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 2, (900, 6), dtype=np.uint8)
    segs = [make_segment(codes[i::3], 48, tables=i == 0, seed=i) for i in range(3)]
    dead = [np.array([1], np.int32), np.zeros(0, np.int32), np.array([0, 4], np.int32)]
    queries = codes[:10]
    for k, radius in [(25, None), (None, 2), (3, 1), (1000, None)]:
        got = engine.search(segs, dead, pad_to_64(queries), k, radius)
        for q, (d, s, r) in enumerate(got):
            every = []
            for i, seg in enumerate(segs):
                bd, br = brute(seg, codes, queries[q], None, radius, dead[i])
                pairs = zip(bd.tolist(), br.tolist(), strict=True)
                every += [(x, bytes(seg.ids[y]), i, y) for x, y in pairs]
            every.sort()
            expected = every if k is None else every[:k]
            assert [(int(x), i, int(y)) for x, i, y in zip(d, s, r, strict=True)] == [
                (x, i, y) for x, _, i, y in expected
            ]


def test_merged_segment_drops_dead_inputs_and_keeps_id_order() -> None:
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 256, (400, 6), dtype=np.uint8)
    a, b = make_segment(codes[:200], 48, seed=1), make_segment(codes[200:], 48, seed=2)
    merged = merge([(a, np.array([2])), (b, np.zeros(0, np.int64))], 48)
    assert len(merged) == 400 - int(a.arrays["video_rows"][2])
    assert np.all(merged.ids[:-1] < merged.ids[1:])
    assert merged.n_videos == 9 and "v2.mp4" not in [merged.video_path(v) for v in range(5)]
    for row in range(0, len(merged), 37):  # every row keeps its code and input
        kid = bytes(merged.ids[row]).decode()
        src = a if a.find(kid) >= 0 else b
        at = src.find(kid)
        assert np.array_equal(merged.arrays["codes"][row], src.arrays["codes"][at])
        assert merged.video_path(int(merged.video[row])) == src.video_path(int(src.video[at]))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 400),
    code_bits=st.sampled_from([8, 12, 48, 64, 72, 130]),
    alphabet=st.sampled_from([2, 16, 256]),
    k=st.one_of(st.none(), st.integers(1, 60)),
    radius=st.one_of(st.none(), st.integers(0, 20)),
    blocked=st.lists(st.integers(0, 5), max_size=3),
    budget=st.sampled_from([1, 50, 1 << 40]),
    seed=st.integers(0, 2**31),
)
def test_any_shape_matches_brute_force(n, code_bits, alphabet, k, radius, blocked, budget, seed):
    if k is None and radius is None:
        radius = 3
    rng = np.random.default_rng(seed)
    nbytes = (code_bits + 7) // 8
    codes = rng.integers(0, alphabet, (n, nbytes), dtype=np.uint8)
    if code_bits % 8:  # unused low bits of the last byte are 0
        codes[:, -1] &= np.uint8((0xFF << (8 - code_bits % 8)) & 0xFF)
    seg = make_segment(codes, code_bits, videos=6, seed=seed)
    queries = np.concatenate([codes[:3], rng.integers(0, alphabet, (2, nbytes), dtype=np.uint8)])
    if code_bits % 8:
        queries[:, -1] &= np.uint8((0xFF << (8 - code_bits % 8)) & 0xFF)
    padded = pad_to_64(queries)
    blocked_arr = np.array(sorted(set(blocked)), np.int32)
    if seg.tables is not None:
        answers, _ = mih.search(seg.tables, seg.video, padded, k, radius, blocked_arr, budget)
        for q, answer in enumerate(answers):
            if answer is not None:
                bd, br = brute(seg, codes, queries[q], k, radius, blocked_arr)
                assert np.array_equal(answer[1], br) and np.array_equal(answer[0], bd)
    check(seg, codes, queries, k, radius, blocked_arr)


def test_substrings_cover_the_code_without_crossing_words() -> None:
    assert mih.chunks(48) == [(0, 16), (16, 16), (32, 16)]
    assert mih.chunks(64) == [(0, 16), (16, 16), (32, 16), (48, 16)]
    assert mih.chunks(12) == [(0, 12)]
    spec = mih.chunks(130)
    assert sum(b for _, b in spec) == 130 and all(b <= 16 for _, b in spec)
    assert all(s // 64 == (s + b - 1) // 64 for s, b in spec)
    code = np.packbits(np.arange(48) % 3 == 0)[None, :]
    padded = pad_to_64(code)
    values = [int(v[0]) for v in mih.substrings(padded, mih.chunks(48))]
    bits = "".join(str(int(i % 3 == 0)) for i in range(48))
    assert values == [int(bits[i : i + 16], 2) for i in (0, 16, 32)]


def test_file_array_reads_what_the_map_shows(tmp_path) -> None:
    """The array file read back mapped and with pread (FileArray): same values for every
    kind of index; a damaged file is refused."""
    from vidhash.index.search.arrayfile import DamagedFile, bsearch, read_arrays, write_arrays

    rng = np.random.default_rng(8)
    arrays = {
        "x": np.arange(1000, dtype=np.int64),
        "c": rng.integers(0, 256, (500, 8), dtype=np.uint8),
        "s": np.array([b"ab", b"abc", b"b", b"de"], dtype="S3"),
        "empty": np.zeros((0, 8), np.uint8),
    }
    write_arrays(tmp_path / "f", arrays, {"k": 1})
    info, mapped = read_arrays(tmp_path / "f")
    _, read = read_arrays(tmp_path / "f", access="read")
    assert info == {"k": 1}
    mask = np.zeros(1000, bool)
    mask[[3, 500, 501]] = True
    indexes = [7, -1, slice(10, 20), slice(None, None, 7), np.array([[5, 3, 900], [0, 999, 5]])]
    indexes += [mask, np.zeros(0, np.int64), (7, slice(None, 6)), (np.array([1, 2]), slice(3))]
    for index in indexes:
        name = "c" if isinstance(index, tuple) else "x"
        assert np.array_equal(read[name][index], mapped[name][index]), index
    assert np.array_equal(read["c"].view(np.uint64)[[4, 9]], mapped["c"].view(np.uint64)[[4, 9]])
    assert np.array_equal(np.asarray(read["s"]), mapped["s"]) and len(read["empty"]) == 0
    for key in [b"a", b"ab", b"abc", b"abd", b"b", b"z"]:
        assert (
            bsearch(read["s"], key)
            == bsearch(mapped["s"], key)
            == np.searchsorted(mapped["s"], key)
        )
    data = (tmp_path / "f").read_bytes()
    (tmp_path / "g").write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFile):
        read_arrays(tmp_path / "g")
    (tmp_path / "h").write_bytes(b"not an array file at all")
    with pytest.raises(DamagedFile):
        read_arrays(tmp_path / "h", access="read")


def test_an_index_from_a_pandas_table_searches_like_brute_force() -> None:
    """Index.from_table with pandas rows (large_string columns in Arrow) builds and answers."""
    import pandas as pd

    from vidhash.index.search.index import Index

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (50, 6), dtype=np.uint8)
    video = np.arange(50) // 10
    keyframes = pd.DataFrame({
        "keyframe_id": [f"{v:016x}-{i % 10:09d}" for i, v in enumerate(video)],
        "video_id": [f"{v:064x}" for v in video],
        "video_path": [f"videos/{v}.mp4" for v in video],
        "pts_time": (np.arange(50) % 10).astype(np.float64),
        "image_path": [f"images/{v:016x}/{v:016x}-{i % 10:09d}.jpg" if i % 2 else None
                       for i, v in enumerate(video)],
    })  # fmt: skip
    index = Index.from_table(Path("."), keyframes, codes, 48, {}, {})
    hits = index.search(codes[7], k=5)
    distances = hamming(codes[7], codes)
    assert [h.distance for h in hits] == sorted(distances)[:5]
    assert hits[0].keyframe_id == keyframes["keyframe_id"][7]
    assert hits[0].image_path and hits[0].image_path.endswith(f"{hits[0].keyframe_id}.jpg")
