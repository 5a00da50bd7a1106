"""Concept MAP over a real (small) Parquet index, checked against a brute force."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidhash.eval import concepts, report
from vidhash.fsutil import keyframe_id
from vidhash.index import IndexStore

BITS = 16


def make_index(
    root: Path,
    codes_per_video: dict[str, np.ndarray],
    labels: list[tuple[str, str, str]],
    model_id: str = "m" * 64,
    images: bool = False,
) -> tuple[Path, dict[str, list[str]]]:
    """Write an index through IndexStore: {video name: (n, BITS) 0/1 codes} + labels.

    ``labels`` rows are (video name, keyframe number or '*' for all, concept/group) encoded
    as (video, "k|*", "group:concept"). Returns the path and keyframe ids per video.
    """
    meta = {"model_id": model_id, "model_name": "test", "model_config": {}, "code_bits": BITS}
    store = IndexStore.open(root, model_meta=meta, create=True)
    ids: dict[str, list[str]] = {}
    rng = np.random.default_rng(0)
    for vi, (name, bits) in enumerate(sorted(codes_per_video.items())):
        video_hash = f"{vi:02d}" + "ab" * 31
        kfs = []
        for i, row in enumerate(bits):
            kid = keyframe_id(video_hash, float(i))
            kf = {"keyframe_id": kid, "pts_time": float(i), "code": np.packbits(row).tobytes()}
            if images:
                pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
                kf["image_path"] = store.write_image(kid, pixels)
            kfs.append(kf)
        ids[name] = [k["keyframe_id"] for k in kfs]
        store.write_video(
            {"video_path": f"/videos/{name}", "status": "ok", "content_hash": video_hash}, kfs
        )
    rows = []
    for video, which, label in labels:
        group, concept = label.split(":")
        targets = ids[video] if which == "*" else [ids[video][int(which)]]
        rows += [{"keyframe_id": k, "concept": concept, "group": group} for k in targets]
    if rows:
        store.write_annotations(pd.DataFrame(rows))
    store.close()
    return root, ids


def random_index(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    videos = {f"v{i}.mp4": rng.integers(0, 2, (5, BITS)) for i in range(8)}
    labels = []
    for video, k in itertools.product(sorted(videos), range(5)):
        for label in ("local:car", "local:person", "global:street"):
            if rng.random() < 0.35:
                labels.append((video, str(k), label))
    return make_index(root, videos, labels)[0]


def brute_force(index: concepts.IndexData, ks: list[int], exclude_same_video: bool) -> dict:
    """Per (query, group, concept): AP@K by the definition, with plain loops."""
    kf = index.keyframes
    labels: dict[str, set] = {}
    for kid, c, g in index.annotations.itertuples(index=False):
        labels.setdefault(kid, set()).add((g, c))
    out = {}
    for qi in range(len(kf)):
        qid = kf["keyframe_id"][qi]
        for concept in sorted(labels.get(qid, ())):
            cands = []
            for j in range(len(kf)):
                if j == qi or (exclude_same_video and kf["video_id"][j] == kf["video_id"][qi]):
                    continue
                a, b = np.unpackbits(index.codes[qi]), np.unpackbits(index.codes[j])
                cands.append((int((a[:BITS] != b[:BITS]).sum()), kf["keyframe_id"][j]))
            cands.sort()
            for k in ks:
                hits, total = 0, 0.0
                for rank, (_, cid) in enumerate(cands[:k], start=1):
                    if concept in labels.get(cid, ()):
                        hits += 1
                        total += hits / rank
                out[(qid, concept[0], concept[1], k)] = total / hits if hits else 0.0
    return out


@pytest.mark.parametrize("exclude", [True, False])
def test_concept_map_matches_brute_force(tmp_path, exclude):
    index = concepts.load_index(random_index(tmp_path / "idx"))
    ks = [3, 10]
    run = concepts.evaluate_concepts(index, ks, exclude_same_video=exclude)
    want = brute_force(index, ks, exclude)
    assert len(run.per_query) == len(want) // len(ks)
    for _, row in run.per_query.iterrows():
        for k in ks:
            key = (row["keyframe_id"], row["group"], row["concept"], k)
            assert row[f"ap@{k}"] == pytest.approx(want[key])
    # Concept MAP = mean over its queries; group overall = unweighted mean over concepts.
    for _, row in run.table.iterrows():
        for k in ks:
            vals = [
                v
                for (_q, g, c, kk), v in want.items()
                if (g, c, kk) == (row["group"], row["concept"], k)
            ]
            assert row[f"map@{k}"] == pytest.approx(np.mean(vals))
    # Blocks of queries change nothing.
    blocked = concepts.evaluate_concepts(index, ks, exclude_same_video=exclude, block=3)
    pd.testing.assert_frame_equal(blocked.per_query, run.per_query)
    np.testing.assert_array_equal(blocked.rankings, run.rankings)
    overall = run.overall().set_index("group")
    local = run.table[run.table["group"] == "local"]["map@10"].mean()
    assert overall.loc["local", "map@10"] == pytest.approx(local)


def test_same_video_exclusion(tmp_path):
    # Video a: three identical codes, all "dog". Video b: one "dog" far away; c: clutter near.
    zeros, ones = np.zeros(BITS, int), np.ones(BITS, int)
    near = zeros.copy()
    near[0] = 1
    videos = {"a.mp4": np.stack([zeros] * 3), "b.mp4": ones[None], "c.mp4": np.stack([near] * 2)}
    labels = [("a.mp4", "*", "local:dog"), ("b.mp4", "0", "local:dog")]
    root, ids = make_index(tmp_path / "idx", videos, labels)
    index = concepts.load_index(root)
    run = concepts.evaluate_concepts(index, [1, 3], exclude_same_video=True)
    a0 = run.per_query[run.per_query["keyframe_id"] == ids["a.mp4"][0]].iloc[0]
    # Only c (clutter, 2 items) then b: top-3 = [c, c, b] -> AP@3 = (1/3)/1
    assert a0["ap@1"] == 0.0
    assert a0["ap@3"] == pytest.approx(1 / 3)
    pos = run.query_ids.index(ids["a.mp4"][0])
    ranked_ids = set(index.keyframes["keyframe_id"].iloc[run.rankings[pos]])
    assert not ranked_ids & set(ids["a.mp4"])
    incl = concepts.evaluate_concepts(index, [1, 3], exclude_same_video=False)
    a0 = incl.per_query[incl.per_query["keyframe_id"] == ids["a.mp4"][0]].iloc[0]
    assert a0["ap@1"] == 1.0 and a0["ap@3"] == 1.0  # its near-duplicates fill the top


def test_multilabel_query_counts_per_concept(tmp_path):
    zeros = np.zeros(BITS, int)
    one_bit = zeros.copy()
    one_bit[0] = 1
    two_bits = one_bit.copy()
    two_bits[1] = 1
    videos = {"q.mp4": zeros[None], "x.mp4": one_bit[None], "y.mp4": two_bits[None]}
    labels = [
        ("q.mp4", "0", "local:car"),
        ("q.mp4", "0", "global:street"),
        ("x.mp4", "0", "global:street"),
        ("y.mp4", "0", "local:car"),
    ]
    root, ids = make_index(tmp_path / "idx", videos, labels)
    run = concepts.evaluate_concepts(concepts.load_index(root), [2])
    q = run.per_query[run.per_query["keyframe_id"] == ids["q.mp4"][0]].set_index("concept")
    assert q.loc["street", "ap@2"] == 1.0  # x first, relevant for street
    assert q.loc["car", "ap@2"] == 0.5  # y second, relevant for car only
    table = run.table.set_index("concept")
    assert table.loc["car", "n_queries"] == 2 and table.loc["street", "n_queries"] == 2


def test_unannotated_keyframes_occupy_ranks(tmp_path):
    zeros = np.zeros(BITS, int)
    near, far = zeros.copy(), np.ones(BITS, int)
    near[0] = 1
    videos = {"q.mp4": zeros[None], "clutter.mp4": near[None], "r.mp4": far[None]}
    labels = [("q.mp4", "0", "local:cat"), ("r.mp4", "0", "local:cat")]
    root, ids = make_index(tmp_path / "idx", videos, labels)
    run = concepts.evaluate_concepts(concepts.load_index(root), [2])
    q = run.per_query.set_index("keyframe_id").loc[ids["q.mp4"][0]]
    assert q["ap@2"] == 0.5


def test_query_list_and_errors(tmp_path):
    root = random_index(tmp_path / "idx")
    index = concepts.load_index(root)
    some = list(index.annotations["keyframe_id"].unique()[:3])
    qfile = tmp_path / "q.txt"
    qfile.write_text("\n".join(some) + "\n")
    run = concepts.evaluate_concepts(index, [5], concepts.read_query_list(qfile))
    assert set(run.per_query["keyframe_id"]) == set(some)
    with pytest.raises(concepts.InputError, match="not in the index"):
        concepts.evaluate_concepts(index, [5], ["nope"])
    unlabelled = set(index.keyframes["keyframe_id"]) - set(index.annotations["keyframe_id"])
    with pytest.raises(concepts.InputError, match="no concept annotation"):
        concepts.evaluate_concepts(index, [5], [sorted(unlabelled)[0]])


def test_report_files(tmp_path):
    rng = np.random.default_rng(5)
    videos = {f"v{i}.mp4": rng.integers(0, 2, (3, BITS)) for i in range(5)}
    labels = [("v0.mp4", "*", "local:car"), ("v1.mp4", "*", "local:car")]
    labels += [("v2.mp4", "*", "global:street"), ("v3.mp4", "0", "global:street")]
    labels += [("v4.mp4", "1", "local:person")]
    a, _ = make_index(tmp_path / "a", videos, labels, images=True)
    other = {k: 1 - v for k, v in videos.items()}
    b, _ = make_index(tmp_path / "b", other, labels, model_id="n" * 64, images=True)
    data = {"proposed": concepts.load_index(a), "baseline": concepts.load_index(b)}
    concepts.check_comparable(data["proposed"], data["baseline"])
    runs = {n: concepts.evaluate_concepts(d, [10, 50]) for n, d in data.items()}
    written = report.write_report(tmp_path / "out", runs, data, n_sheets=2)
    table = pd.read_csv(written["csv-local"])
    assert list(table.columns) == [
        "concept",
        "queries",
        "top-10 proposed",
        "top-10 baseline",
        "top-50 proposed",
        "top-50 baseline",
    ]
    assert table["concept"].tolist() == ["car", "person", "overall"]
    assert table.iloc[-1]["top-10 proposed"] == pytest.approx(
        table.iloc[:2]["top-10 proposed"].mean()
    )
    md = written["markdown"].read_text()
    assert "### global" in md and "### local" in md and "**overall**" in md
    page = written["html"].read_text()
    # 2 bar charts + 2 sample queries x 2 runs of contact sheets, all inline
    assert page.count("data:image/png;base64,") == 2 + 2 * 2
    assert "R_K" in page and "n" * 12 in page
    assert 'src="http' not in page and "src='http" not in page
    assert len(list((tmp_path / "out" / "sheets").glob("*.png"))) == 2 * 2
    # Results lead: the headline table (overall per group, both runs and the difference)
    # comes before any other section; settings and definitions are folded below.
    headline = page.index("<table class='headline'>")
    assert headline < page.index("<h2>") and headline < page.index("data:image/png")
    table_html = page[headline : page.index("</table>", headline)]
    overall = {g: t.iloc[-1] for g, t in report.concept_tables(runs).items()}
    delta = overall["local"]["top-10 proposed"] - overall["local"]["top-10 baseline"]
    assert f"{overall['local']['top-10 proposed']:.4f}" in table_html
    assert f"{delta:+.4f}" in table_html and "&Delta; MAP@50" in table_html
    assert page.index("<h2>Settings</h2>") > page.index("<h2>Sample queries</h2>")
    assert page.index("<details>", page.index("<h2>Settings</h2>")) > 0


def test_report_summarises_training_history():
    config = {"arch": "psp", "train": {"lr": 0.1, "history": [{"epoch": 1}, {"epoch": 2}]}}
    summary = report.summarise_config(config)
    assert summary["train"] == {"lr": 0.1, "history": {"epochs": 2, "last": {"epoch": 2}}}
    assert config["train"]["history"] == [{"epoch": 1}, {"epoch": 2}]  # input untouched


def test_compare_requires_same_keyframes_and_labels(tmp_path):
    rng = np.random.default_rng(6)
    videos = {f"v{i}.mp4": rng.integers(0, 2, (2, BITS)) for i in range(3)}
    labels = [("v0.mp4", "*", "local:car")]
    a, _ = make_index(tmp_path / "a", videos, labels)
    b, _ = make_index(tmp_path / "b", videos, labels + [("v1.mp4", "0", "local:car")])
    fewer = {k: v for k, v in videos.items() if k != "v2.mp4"}
    c, _ = make_index(tmp_path / "c", fewer, labels)
    with pytest.raises(concepts.UsageError, match="annotations differ"):
        concepts.check_comparable(concepts.load_index(a), concepts.load_index(b))
    with pytest.raises(concepts.UsageError, match="different keyframes"):
        concepts.check_comparable(concepts.load_index(a), concepts.load_index(c))


def test_rankings_agree_with_index_search(tmp_path):
    """Evaluation ranks exactly as `vidhash search` (FAISS) does: distance, then keyframe id."""
    from vidhash.index.search.index import Index

    root = random_index(tmp_path / "idx", seed=11)
    data = concepts.load_index(root)
    run = concepts.evaluate_concepts(data, [10])
    index = Index.open(root)
    kf = data.keyframes.set_index("keyframe_id")
    codes = np.stack([index.code_of(q) for q in run.query_ids])
    own = [[kf.loc[q, "video_id"]] for q in run.query_ids]
    hits = index.search(codes, k=10, exclude_video_ids=own)
    for pos, query_hits in enumerate(hits):
        ours = data.keyframes["keyframe_id"].iloc[run.rankings[pos]].tolist()
        assert [h.keyframe_id for h in query_hits] == ours
        assert [h.distance for h in query_hits] == run.distances[pos].tolist()


def test_code_stats():
    codes = np.packbits(np.array([[1, 0] * 4, [1, 0] * 4, [0, 1] * 4], dtype=np.uint8), axis=1)
    stats = concepts.code_stats(codes, 8)
    assert stats == {"distinct_codes": 2, "largest_bucket": 2, "mean_bit_imbalance": 0.1667}
