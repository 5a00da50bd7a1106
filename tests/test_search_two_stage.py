"""Two-stage search: Hamming candidates re-ranked by stored descriptors, and the filters.

Indexes are real (Parquet via IndexStore, the search file); codes and unit descriptors come
from a seeded RNG, codes from a tiny alphabet so that distances tie by the hundred.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_index_helpers import MODEL, content_of, keyframes_for

from vidhash.index import IndexStore
from vidhash.index.search.index import NO_DESCRIPTORS, Index
from vidhash.index.store.codes import hamming

DIMS = 8
DESC_MODEL = {**MODEL, "model_id": "d" * 64, "descriptor_dims": DIMS}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIMS))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def build(root: Path, n_videos: int = 5, per_video: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with IndexStore.open(root, model_meta=DESC_MODEL, create=True) as store:
        for v in range(n_videos):
            path = f"videos/clip{v}.mp4"
            codes = rng.integers(0, 3, (per_video, 6), dtype=np.uint8)
            frames = keyframes_for(content_of(path), codes)
            for frame, desc in zip(frames, unit(rng, per_video), strict=True):
                frame["descriptor"] = desc.astype("<f2").tobytes()
            row = {"video_path": path, "content_hash": content_of(path), "status": "ok"}
            store.write_video(row, frames)


def table(index: Index) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    ids = index.keyframes["keyframe_id"].to_numpy()
    codes = np.stack([index.code_of(k) for k in ids])
    desc = np.stack([index.descriptor_of(k) for k in ids]).astype(np.float32)
    concepts = [index.concepts_of(k) for k in ids]
    return ids, codes, desc, concepts


def expected(index, query_code, query_desc, k, candidates, radius=None, keep=None):
    """Brute force: (distance, id) order, first `candidates` (or all within radius), then
    by descending score, ties kept in that order; the best k."""
    ids, codes, desc, _ = table(index)
    dist = hamming(query_code, codes)
    rows = np.arange(len(ids)) if keep is None else np.flatnonzero(keep)
    if radius is not None:
        rows = rows[dist[rows] <= radius]
    rows = rows[np.lexsort((ids[rows], dist[rows]))]
    if radius is None:
        rows = rows[: max(k, candidates)]
    scores = desc[rows] @ query_desc.astype(np.float32)
    rows = rows[np.argsort(-scores, kind="stable")][:k]
    return list(ids[rows]), list(dist[rows]), desc[rows] @ query_desc.astype(np.float32)


@pytest.mark.parametrize(("k", "candidates"), [(1, 1), (5, 20), (10, 100), (30, 500)])
def test_two_stage_is_brute_force(tmp_path: Path, k: int, candidates: int) -> None:
    build(tmp_path / "idx")
    index = Index.open(tmp_path / "idx")
    assert index.descriptor_dims == DIMS
    rng = np.random.default_rng(7)
    for _ in range(10):
        code = rng.integers(0, 3, 6, dtype=np.uint8)
        desc = unit(rng, 1)[0]
        hits = index.search(code, k=k, descriptors=desc, candidates=candidates)
        want_ids, want_dist, want_scores = expected(index, code, desc, k, candidates)
        assert [h.keyframe_id for h in hits] == want_ids
        assert [h.distance for h in hits] == want_dist
        assert np.allclose([h.score for h in hits], want_scores, atol=1e-6)


def test_codes_only_keeps_hamming_order_and_reports_scores(tmp_path: Path) -> None:
    build(tmp_path / "idx")
    index = Index.open(tmp_path / "idx")
    ids, codes, desc, _ = table(index)
    plain = index.search(codes[3], k=15)
    scored = index.search(codes[3], k=15, descriptors=desc[3], rerank=False)
    assert [h.keyframe_id for h in scored] == [h.keyframe_id for h in plain]
    assert all(h.score is None for h in plain)
    want = {k: float(s) for k, s in zip(ids, desc @ desc[3], strict=True)}
    assert all(abs(h.score - want[h.keyframe_id]) < 1e-6 for h in scored)


def test_keyframe_query_uses_its_stored_descriptor(tmp_path: Path) -> None:
    build(tmp_path / "idx")
    index = Index.open(tmp_path / "idx")
    ids, _, _, _ = table(index)
    for kid in ids[::37]:
        hits = index.search_ids(kid, k=5)
        assert hits[0].keyframe_id == kid and hits[0].distance == 0
        assert hits[0].score == pytest.approx(1.0, abs=2e-3)


def test_radius_reranks_everything_within_it(tmp_path: Path) -> None:
    build(tmp_path / "idx")
    index = Index.open(tmp_path / "idx")
    rng = np.random.default_rng(1)
    code, desc = rng.integers(0, 3, 6, dtype=np.uint8), unit(rng, 1)[0]
    hits = index.search(code, k=8, radius=6, descriptors=desc)
    want_ids, want_dist, _ = expected(index, code, desc, 8, 0, radius=6)
    assert [h.keyframe_id for h in hits] == want_ids and max(want_dist) <= 6


def test_concept_filter_and_exclusion(tmp_path: Path) -> None:
    build(tmp_path / "idx")
    ids = Index.open(tmp_path / "idx").keyframes["keyframe_id"].to_numpy()
    labels = {kid: ["dog"] for kid in ids[::3]} | {kid: ["cat"] for kid in ids[1::7]}
    with IndexStore.open(tmp_path / "idx") as store:
        rows = [(kid, c, "object") for kid, cs in labels.items() for c in cs]
        store.write_annotations(pd.DataFrame(rows, columns=["keyframe_id", "concept", "group"]))
    index = Index.open(tmp_path / "idx")
    rng = np.random.default_rng(2)
    keep = np.isin(ids, [k for k, cs in labels.items() if "dog" in cs])
    for rerank in (True, False):
        code, desc = rng.integers(0, 3, 6, dtype=np.uint8), unit(rng, 1)[0]
        hits = index.search(code, k=12, descriptors=desc, concept="dog", rerank=rerank)
        assert all("dog" in h.concepts for h in hits) and len(hits) == 12
        if rerank:
            want_ids, _, _ = expected(index, code, desc, 12, 100, keep=keep)
            assert [h.keyframe_id for h in hits] == want_ids
    video = index.record(ids[0])["video_id"]
    hits = index.search_ids([ids[0]], k=50, exclude_same_video=True, concept="dog")[0]
    assert hits and all(h.video_id != video and "dog" in h.concepts for h in hits)
    with pytest.raises(KeyError):
        index.search(code, k=3, concept="zebra")


def test_concept_filter_over_segments_without_that_concept(tmp_path: Path) -> None:
    """Inputs committed one by one leave several segments; most hold no labelled row."""
    build(tmp_path / "idx", n_videos=7, per_video=11, seed=3)
    index = Index.open(tmp_path / "idx")
    assert len(index._segments) > 1
    ids = index.keyframes["keyframe_id"].to_numpy()
    rows = [(ids[i], "rare", "object") for i in (2, 5)]
    with IndexStore.open(tmp_path / "idx") as store:
        store.write_annotations(pd.DataFrame(rows, columns=["keyframe_id", "concept", "group"]))
    index = Index.open(tmp_path / "idx")
    hits = index.search(np.zeros(6, np.uint8), k=5, concept="rare")
    assert sorted(h.keyframe_id for h in hits) == sorted(ids[[2, 5]])


def test_descriptors_survive_merges_and_rebuilds(tmp_path: Path) -> None:
    """Many commits (segments merge) and a deleted search file (rebuilt from Parquet)
    give the same two-stage answers."""
    build(tmp_path / "idx", n_videos=9, per_video=25, seed=4)
    index = Index.open(tmp_path / "idx")
    ids, codes, desc, _ = table(index)
    before = [index.search(codes[i], k=10, descriptors=desc[i]) for i in range(0, 200, 40)]
    shutil.rmtree(tmp_path / "idx" / "search")
    again = Index.open(tmp_path / "idx")
    after = [again.search(codes[i], k=10, descriptors=desc[i]) for i in range(0, 200, 40)]
    assert [[h.to_dict() for h in q] for q in before] == [[h.to_dict() for h in q] for q in after]


def test_index_without_descriptors_searches_codes_only(tmp_path: Path) -> None:
    from test_index_helpers import build_index

    build_index(tmp_path / "old", n_videos=2, per_video=5)
    index = Index.open(tmp_path / "old")
    assert index.descriptor_dims == 0 and "--reindex" in NO_DESCRIPTORS
    code = index.code_of(index.keyframes["keyframe_id"].iat[0])
    hits = index.search(code, k=3, descriptors=np.ones(DIMS, np.float32))
    assert [h.to_dict() for h in hits] == [h.to_dict() for h in index.search(code, k=3)]


def test_wrong_descriptor_shape_is_an_error(tmp_path: Path) -> None:
    build(tmp_path / "idx", n_videos=1, per_video=5)
    index = Index.open(tmp_path / "idx")
    with pytest.raises(ValueError, match="descriptors must be"):
        index.search(np.zeros(6, np.uint8), k=3, descriptors=np.ones(DIMS + 1))


@pytest.mark.parametrize("candidates", [5, 30])
def test_evaluate_rerank_ranks_as_search_does(tmp_path: Path, candidates: int) -> None:
    """`vidhash evaluate --rerank` and two-stage search give the same lists."""
    from vidhash.eval import concepts

    build(tmp_path / "idx", n_videos=4, per_video=30, seed=9)
    ids = Index.open(tmp_path / "idx").keyframes["keyframe_id"].to_numpy()
    rows = [(kid, "even" if i % 2 else "odd", "object") for i, kid in enumerate(ids[::4])]
    with IndexStore.open(tmp_path / "idx") as store:
        store.write_annotations(pd.DataFrame(rows, columns=["keyframe_id", "concept", "group"]))
    data = concepts.load_index(tmp_path / "idx")
    run = concepts.evaluate_concepts(data, [10], rerank=True, candidates=candidates)
    assert "two-stage" in run.settings["protocol"]
    hits = Index.open(tmp_path / "idx").search_ids(
        run.query_ids, k=10, exclude_same_video=True, candidates=candidates
    )
    for pos, query_hits in enumerate(hits):
        assert [h.keyframe_id for h in query_hits] == list(ids[run.rankings[pos]])
        assert [h.distance for h in query_hits] == run.distances[pos].tolist()
    plain = concepts.evaluate_concepts(data, [10])
    assert "codes only" in plain.settings["protocol"]
    assert not np.array_equal(plain.rankings, run.rankings)


def test_a_keyframe_without_its_descriptor_is_refused(tmp_path: Path) -> None:
    build(tmp_path / "idx", n_videos=1, per_video=3)
    frames = keyframes_for(content_of("other.mp4"), np.zeros((2, 6), np.uint8))
    with IndexStore.open(tmp_path / "idx") as store, pytest.raises(ValueError, match="8-d"):
        store.write_video({"video_path": "other.mp4", "content_hash": content_of("other.mp4"),
                           "status": "ok"}, frames)  # fmt: skip
    assert len(Index.open(tmp_path / "idx")) == 3  # nothing of it was committed


def test_fit_descriptor_keeps_the_codes_and_adds_unit_descriptors(
    media_dir: Path, tmp_path: Path, capsys
) -> None:
    """`vidhash fit-descriptor` on a real pool: same codes, unit float16 descriptors, a new
    model id, and the header records what was fitted."""
    from indexes import run_main

    from vidhash.models import load_model, shipped_path
    from vidhash.models.checkpoint import read_header

    out = tmp_path / "described.safetensors"
    argv = ["fit-descriptor", str(shipped_path("default")), "--pool", str(media_dir / "long.mp4"),
            "--pool", str(media_dir / "still.jpg"), "--pool-every", "0.5", "--dims", "8",
            "--out", str(out)]  # fmt: skip
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert "8 dims" in stdout
    fitted, shipped = load_model(str(out)), load_model("default")
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    codes, desc = fitted.embed(images)
    assert np.array_equal(codes, shipped.encode(images)) and desc.shape == (3, 8)
    assert np.allclose(np.linalg.norm(desc.astype(np.float32), axis=1), 1, atol=2e-3)
    assert fitted.model_id != shipped.model_id
    header = read_header(out)["descriptor"]
    assert header["source"] == "head" and header["dims"] == 8 and header["pool_images"] > 8
