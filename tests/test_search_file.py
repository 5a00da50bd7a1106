"""The search file: kept at every commit, old-or-new after a kill at any rename, rebuilt
when stale or missing, read as it is while another writer holds the lock."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from crash_writer import operations
from crash_writer import run as run_workload
from test_index_helpers import MODEL, build_index, content_of, keyframes_for

from vidhash.index import IndexStore
from vidhash.index.search.file import Manifest, SearchView, source_files
from vidhash.index.search.index import Index
from vidhash.index.store.codes import hamming
from vidhash.index.store.layout import part_key

TESTS = Path(__file__).parent


def parquet_rows(root: Path) -> set[tuple[str, str, bytes]]:
    """(keyframe id, video path, code) of every committed keyframe: the source of truth."""
    table = IndexStore.open(root).read_arrow("keyframes")
    return set(
        zip(
            table.column("keyframe_id").to_pylist(),
            table.column("video_path").to_pylist(),
            table.column("code").to_pylist(),
            strict=True,
        )
    )


def search_rows(root: Path) -> set[tuple[str, str, bytes]] | None:
    """The same, as the search file on disk holds it (no repair); None without a manifest."""
    manifest = Manifest.read(root)
    if manifest is None:
        return None
    view = SearchView.load(root, manifest)
    out = set()
    for seg, dead in zip(view.segments, view.dead, strict=True):
        for row in range(len(seg)):
            vno = int(seg.video[row])
            if vno not in dead:
                out.add((seg.keyframe_id(row), seg.video_path(vno), seg.code(row, 6).tobytes()))
    return out


def assert_current(root: Path) -> None:
    manifest = Manifest.read(root)
    assert manifest is not None and manifest.current(source_files(root))
    assert search_rows(root) == parquet_rows(root)


def assert_searches_like_parquet(root: Path, queries: int = 6) -> None:
    """Index.open answers exactly as a brute-force scan of the committed Parquet rows."""
    table = IndexStore.open(root).read_arrow("keyframes")
    ids = table.column("keyframe_id").to_pylist()
    index = Index.open(root)
    assert len(index) == len(ids)
    if not ids:
        assert index.search(np.zeros(6, np.uint8), k=5) == []
        return
    codes = np.stack([np.frombuffer(c, np.uint8) for c in table.column("code").to_pylist()])
    for q in range(0, len(ids), max(1, len(ids) // queries)):
        dist = hamming(codes[q], codes)
        expected = sorted(zip(dist.tolist(), ids, strict=True))[:15]
        hits = index.search(codes[q], k=15)
        assert [(h.distance, h.keyframe_id) for h in hits] == expected


def files_of(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_kept_at_every_commit_in_few_segments(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    seen = []

    def after(_: int) -> None:
        assert_current(root)
        seen.append(len(Manifest.read(root).segments))

    run_workload(root, after)
    assert max(seen) <= 4  # a binary counter of 15 inputs
    assert_searches_like_parquet(root)
    before = files_of(root)
    Index.open(root).search(np.zeros(6, np.uint8), k=3)
    assert files_of(root) == before  # a current file is only read


def test_index_open_reads_no_parquet_and_loads_no_pandas_pyarrow_or_faiss(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", n_videos=5, per_video=30, alphabet=4)
    code = (
        "import sys; from vidhash.index.search.index import Index\n"
        f"index = Index.open({str(tmp_path / 'idx')!r})\n"
        "hits = index.search(index.code_of(index.view.segments[0].keyframe_id(0)), k=5)\n"
        "assert hits[0].distance == 0\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'faiss', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_read_access_answers_as_the_mapped_files(tmp_path: Path) -> None:
    """``access="read"`` (pread as asked: what vidhash search uses) gives the same rows,
    records, codes, concepts and answers as the memory-mapped files."""
    root = tmp_path / "idx"
    run_workload(root)  # several segments, dead inputs
    with IndexStore.open(root) as store:
        kids = store.read_table("keyframes")["keyframe_id"].tolist()
        store.write_annotations(pa.table({"keyframe_id": kids[:3], "concept": ["a", "b", "a"],
                                          "group": ["g"] * 3}))  # fmt: skip
    mapped, read = Index.open(root), Index.open(root, access="read")
    assert len(read.view.segments) > 1 and any(len(d) for d in read.view.dead)
    assert read.keyframes.equals(mapped.keyframes)
    video = mapped.record(kids[5])["video_id"]
    for kid in kids[::4]:
        assert read.record(kid) == mapped.record(kid)
        assert np.array_equal(read.code_of(kid), mapped.code_of(kid))
        assert read.concepts_of(kid) == mapped.concepts_of(kid)
        code = mapped.code_of(kid)
        for k, radius, exclude in [(10, None, None), (None, 2, None), (40, 3, {video})]:
            assert read.search(code, k, radius, exclude) == mapped.search(code, k, radius, exclude)
            assert all(
                np.array_equal(a, b)
                for a, b in zip(read.search_arrays(code, k, radius, exclude),
                                mapped.search_arrays(code, k, radius, exclude), strict=True)
            )  # fmt: skip
    with pytest.raises(KeyError):
        read.code_of("nope")


def test_redo_drop_and_displaced_owner_mark_rows_dead_then_compact(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    run_workload(root)
    manifest = Manifest.read(root)
    # clip3 dropped, clip2 redone, clip1 displaced by its copy: their old rows are gone
    paths = {p for _, p, _ in search_rows(root)}
    assert "videos/clip3.mp4" not in paths and "videos/clip1.mp4" not in paths
    assert "videos/a-copy-of-clip1.mp4" in paths
    assert_searches_like_parquet(root)
    # drop most inputs: segments with more dead rows than live ones are rewritten
    with IndexStore.open(root, model_meta=MODEL) as store:
        store.drop_videos([p for p in store.committed() if "more" not in p])
    after = Manifest.read(root)
    for entry in after.segments:
        view = SearchView.load(root, Manifest(0, after.meta, 0, 0, [entry]))
        live = len(view.segments[0]) - int(
            view.segments[0].arrays["video_rows"][view.dead[0]].sum()
        )
        assert live >= len(view.segments[0]) / 2
    assert after.generation > manifest.generation
    assert_current(root)
    assert_searches_like_parquet(root)


def test_a_part_changed_behind_its_back_is_rebuilt_on_open(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=4, per_video=20, alphabet=4, seed=3)
    generation = Manifest.read(root).generation
    part = root / "keyframes" / f"part-{part_key('videos/clip2.mp4')}.parquet"
    table = pq.read_table(part)
    new_codes = [bytes([255 - b for b in c]) for c in table.column("code").to_pylist()]
    column = pa.array(new_codes, table.schema.field("code").type)
    pq.write_table(table.set_column(table.schema.get_field_index("code"), "code", column), part)
    stat = part.stat()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later write
    assert not Manifest.read(root).current(source_files(root))
    index = Index.open(root)
    kid = table.column("keyframe_id")[0].as_py()
    assert index.code_of(kid).tobytes() == new_codes[0]
    assert Manifest.read(root).generation == generation + 1
    assert_current(root)
    assert_searches_like_parquet(root)


@pytest.mark.parametrize("damage", ["missing", "truncated", "manifest"])
def test_missing_or_damaged_search_file_is_rebuilt_on_open(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=5, per_video=12, alphabet=4, seed=4)
    expected = parquet_rows(root)
    if damage == "missing":
        shutil.rmtree(root / "search")
    elif damage == "truncated":
        segment = root / "search" / Manifest.read(root).segments[0]["file"]
        segment.write_bytes(segment.read_bytes()[:100])
    else:
        (root / "search" / "manifest.json").write_text('{"format": 1, "generation": ')
    assert_searches_like_parquet(root)
    assert search_rows(root) == expected
    assert_current(root)
    if damage == "missing":
        assert len(Manifest.read(root).segments) == 1  # a rebuild from nothing: one segment


def test_a_writer_rewrites_segments_whose_tables_are_not_what_their_size_calls_for(
    tmp_path: Path, monkeypatch
) -> None:
    from vidhash.index.search import segment

    root = tmp_path / "idx"
    build_index(root, n_videos=6, per_video=40, alphabet=4, seed=6)
    before = Manifest.read(root)
    assert all(SearchView.load(root, before).segments[i].tables is None for i in range(2))
    monkeypatch.setattr(segment, "MIH_MIN_ROWS", 50)  # as if a newer vidhash wanted tables
    IndexStore.open(root, model_meta=MODEL).close()
    after = SearchView.load(root, Manifest.read(root))
    assert after.generation == before.generation + 1
    assert all((seg.tables is not None) == (len(seg) >= 50) for seg in after.segments)
    assert_current(root)
    assert_searches_like_parquet(root)


def test_stale_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    """A running writer keeps the file current: meanwhile readers use the last good file
    (a consistent earlier commit), or Parquet in memory when there is none; they write
    nothing."""
    root = tmp_path / "idx"
    build_index(root, n_videos=3, per_video=10, alphabet=4, seed=5)
    old = search_rows(root)
    with open(root / ".lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        part = root / "keyframes" / f"part-{part_key('videos/clip0.mp4')}.parquet"
        os.utime(part, ns=(0, part.stat().st_mtime_ns + 5_000_000))  # stale now
        before = files_of(root)
        index = Index.open(root)
        assert index.view.generation == Manifest.read(root).generation
        assert {(h.keyframe_id) for h in index.search(np.zeros(6, np.uint8), k=100)} == {
            kid for kid, _, _ in old
        }
        shutil.rmtree(root / "search")
        before = files_of(root)
        index = Index.open(root)
        assert index.view.generation is None  # built in memory
        assert files_of(root) == before
        assert_searches_like_parquet(root)
    Index.open(root)  # the lock is free again: rebuilt on disk
    assert_current(root)


def test_concepts_come_from_the_search_file_and_follow_annotate(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=3, per_video=4)
    with IndexStore.open(root) as store:
        kids = store.read_table("keyframes")["keyframe_id"].tolist()
        store.write_annotations(
            pa.table(
                {
                    "keyframe_id": kids[:2] * 2,
                    "concept": ["car", "car", "dog", "cat"],
                    "group": ["local"] * 4,
                }
            )  # fmt: skip
        )
    assert Manifest.read(root).concepts is not None
    assert_current(root)
    index = Index.open(root)
    assert index.concepts_of(kids[0]) == ["car", "dog"] and index.concepts_of(kids[2]) == []
    hit = index.search(index.code_of(kids[1]), k=1)[0]
    assert hit.keyframe_id == kids[1] and hit.concepts == ["car", "cat"]
    with IndexStore.open(root) as store:
        store.write_annotations(pa.table({"keyframe_id": [kids[2]], "concept": ["tree"],
                                          "group": ["global"]}))  # fmt: skip
    index = Index.open(root)
    assert index.concepts_of(kids[0]) == [] and index.concepts_of(kids[2]) == ["tree"]


def test_reindex_rebuilds_it_for_the_new_model(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=2, per_video=5)
    other = {**MODEL, "model_id": "b" * 64, "code_bits": 16}
    IndexStore.open(root, model_meta=other, reindex=True).close()
    manifest = Manifest.read(root)
    assert manifest.meta["model_id"] == "b" * 64 and manifest.meta["code_bits"] == 16
    assert search_rows(root) == set() and len(Index.open(root)) == 0
    assert sorted(p.name for p in (root / "search").iterdir()) == ["manifest.json"]


def test_off_switch_leaves_it_stale_and_the_next_open_repairs_it(tmp_path, monkeypatch):
    root = tmp_path / "idx"
    build_index(root, n_videos=2, per_video=5)
    generation = Manifest.read(root).generation
    monkeypatch.setenv("VIDHASH_SEARCH_FILE", "off")
    with IndexStore.open(root, model_meta=MODEL) as store:
        content = content_of("videos/late.mp4")
        codes = np.arange(18, dtype=np.uint8).reshape(3, 6)
        store.commit({"video_path": "videos/late.mp4", "content_hash": content, "status": "ok"},
                     keyframes_for(content, codes))  # fmt: skip
    assert Manifest.read(root).generation == generation
    monkeypatch.delenv("VIDHASH_SEARCH_FILE")
    assert len(Index.open(root)) == 13
    assert_current(root)


def _crash_writer(root: Path, kill_at: int, when: str) -> dict[str, int]:
    """Run the crash writer (killed at its kill_at-th rename): the last number printed
    after each tag ("op", "renames"), -1 for none."""
    argv = [sys.executable, str(TESTS / "crash_writer.py"), str(root), str(kill_at), when]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    found = {"op": -1, "renames": -1}
    for line in out.stdout.splitlines():
        tag, _, number = line.partition(" ")
        if tag in found:
            found[tag] = int(number)
    return found


def test_kill_at_any_rename_leaves_the_old_or_the_new_search_file(tmp_path: Path) -> None:
    # the states the search file may show: after each operation of an uninterrupted run
    reference = tmp_path / "reference"
    states: list[set] = []
    run_workload(reference, lambda i: states.append(parquet_rows(reference)))
    renames = _crash_writer(tmp_path / "counted", 0, "after")["renames"]
    assert renames > 40
    rng = np.random.default_rng(14)
    points = sorted({1, 2, 3, renames, *rng.integers(4, renames, 14).tolist()})
    for n, kill_at in enumerate(points):
        root = tmp_path / f"killed-{n}"
        run = _crash_writer(root, kill_at, "before" if n % 2 else "after")
        assert run["renames"] == -1  # killed
        op = run["op"]
        shown = search_rows(root)
        if shown is not None:  # never torn: it loads, and it is the state before or after op
            before = states[op - 1] if op > 0 else set()
            after = states[op] if op >= 0 else set()
            assert shown in (before, after), (kill_at, op)
        assert_searches_like_parquet(root)  # stale -> repaired on open
        assert_current(root)
        IndexStore.open(root, model_meta=MODEL).close()  # a writer's start keeps it current
        assert_current(root)
    assert len(operations()) == len(states)
