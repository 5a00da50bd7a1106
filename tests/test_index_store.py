"""The Parquet store: schema, incremental writes, duplicates, drops, crash safety, model checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_index_helpers import MODEL, build_index, content_of, keyframes_for

from vidhash.errors import IndexMissingError, ModelMismatchError, UsageError
from vidhash.index import IndexStore
from vidhash.index.search.index import Index
from vidhash.index.store.layout import (
    ANNOTATIONS_SCHEMA,
    META_SCHEMA,
    VIDEOS_SCHEMA,
    keyframes_schema,
    part_key,
)

TESTS = Path(__file__).parent


def visible_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def codes_by_id(root: Path) -> dict[str, tuple[str, bytes]]:
    frame = IndexStore.open(root).read_table("keyframes")
    assert frame["keyframe_id"].is_unique
    return {
        k: (p, bytes(c))
        for k, p, c in zip(frame["keyframe_id"], frame["video_path"], frame["code"], strict=True)
    }


def test_schema_round_trips_through_pyarrow_pandas_duckdb(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=3, per_video=4, images=True)
    keyframes = pq.read_table(root / "keyframes")
    assert keyframes.schema.equals(keyframes_schema(48), check_metadata=False)
    assert keyframes.schema.field("code").type == pa.binary(6)
    assert pq.read_table(root / "videos").schema.equals(VIDEOS_SCHEMA, check_metadata=False)
    assert pq.read_table(root / "meta").schema.equals(META_SCHEMA, check_metadata=False)
    assert keyframes.num_rows == 12
    frame = pd.read_parquet(root / "keyframes")
    assert sorted(frame["keyframe_id"]) == sorted(keyframes.column("keyframe_id").to_pylist())
    con = duckdb.connect()
    n, bits, width = con.execute(
        f"SELECT count(*), min(code_bits), min(octet_length(code)) "
        f"FROM read_parquet('{root}/keyframes/part-*.parquet')"
    ).fetchone()
    assert (n, bits, width) == (12, 48, 6)
    joined = con.execute(
        f"SELECT v.status, count(*) FROM read_parquet('{root}/keyframes/part-*.parquet') k "
        f"JOIN read_parquet('{root}/videos/part-*.parquet') v USING (video_id) GROUP BY 1"
    ).fetchall()
    assert joined == [("ok", 12)]
    store = IndexStore.open(root)
    assert store.meta["model_id"] == MODEL["model_id"]
    assert store.meta["model_config"] == '{"bits": 48}'
    # every keyframe got its JPEG, path relative to the index
    assert all((root / p).is_file() for p in store.read_table("keyframes")["image_path"])
    assert list(store.read_table("annotations").columns) == ANNOTATIONS_SCHEMA.names


def test_missing_index_and_non_index_folder(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError):
        IndexStore.open(tmp_path / "nothing")
    with pytest.raises(IndexMissingError):
        Index.open(tmp_path / "nothing")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a vidhash index"):
        IndexStore.open(tmp_path / "photos", model_meta=MODEL, create=True)
    assert visible_files(tmp_path / "photos") == ["a.jpg"]


def test_rerun_adds_nothing_and_changed_video_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    written = build_index(root, n_videos=3, per_video=4)
    before = codes_by_id(root)
    build_index(root, n_videos=3, per_video=4)  # the same inputs again
    assert codes_by_id(root) == before
    store = IndexStore.open(root, model_meta=MODEL)
    path = next(iter(written))
    assert store.done()[path] == content_of(path)
    new_content = content_of("edited")
    codes = np.full((2, 6), 7, np.uint8)
    store.write_video(
        {"video_path": path, "content_hash": new_content, "status": "ok"},
        keyframes_for(new_content, codes),
    )
    after = codes_by_id(root)
    assert len(after) == len(before) - 4 + 2
    assert [v for v in after.values() if v[0] == path] == [(path, bytes(codes[0]))] * 2
    assert store.done()[path] == new_content


def test_failed_rows_and_one_line_errors(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    store = IndexStore.open(root, model_meta=MODEL, create=True)
    status = store.write_video(
        {
            "video_path": "bad.mp4",
            "content_hash": content_of("bad"),
            "status": "failed",
            "error": "moov atom\nnot found",
        }
    )
    assert status == "failed"
    videos = store.read_table("videos")
    assert videos.loc[0, "error"] == "moov atom not found"
    assert videos.loc[0, "n_keyframes"] == 0
    assert store.read_table("keyframes").empty
    with pytest.raises(ValueError, match="status"):
        store.write_video({"video_path": "x.mp4", "status": "weird"})


def test_identical_content_is_indexed_once_and_survives_a_drop(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    store = IndexStore.open(root, model_meta=MODEL, create=True)
    content = content_of("same bytes")
    frames = keyframes_for(content, np.arange(18, dtype=np.uint8).reshape(3, 6))
    for kf in frames:
        store.write_image(kf["keyframe_id"], np.zeros((8, 8, 3), np.uint8))
    assert (
        store.write_video({"video_path": "a.mp4", "content_hash": content, "status": "ok"}, frames)
        == "ok"
    )
    assert (
        store.write_video(
            {"video_path": "copy/a.mp4", "content_hash": content, "status": "ok"}, frames
        )
        == "duplicate"
    )
    keyframes = store.read_table("keyframes")
    assert len(keyframes) == 3 and keyframes["keyframe_id"].is_unique
    assert set(keyframes["video_path"]) == {"a.mp4"}
    videos = store.read_table("videos").set_index("video_path")
    assert videos.loc["copy/a.mp4", "status"] == "duplicate"
    assert "a.mp4" in videos.loc["copy/a.mp4", "error"]
    # the original goes away: the copy inherits its keyframes and images
    assert store.drop_videos(["a.mp4"]) == ["a.mp4"]
    keyframes = IndexStore.open(root).read_table("keyframes")
    assert set(keyframes["video_path"]) == {"copy/a.mp4"} and len(keyframes) == 3
    assert all((root / p).is_file() for p in keyframes["image_path"])
    assert IndexStore.open(root).done() == {"copy/a.mp4": content}


def test_drop_videos_removes_rows_and_images(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    written = build_index(root, n_videos=3, per_video=2, images=True)
    gone = sorted(written)[0]
    store = IndexStore.open(root, model_meta=MODEL)
    assert store.drop_videos([gone, "never-indexed.mp4"]) == [gone]
    assert gone not in store.done()
    frame = IndexStore.open(root).read_table("keyframes")
    assert gone not in set(frame["video_path"]) and len(frame) == 4
    assert not (root / "images" / content_of(gone)[:16]).exists()
    assert len(list((root / "images").iterdir())) == 2
    assert len(Index.open(root)) == 4


def test_model_mismatch_refused_unless_reindex(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=2, per_video=3, images=True)
    other = dict(MODEL, model_id="b" * 64, model_name="other")
    before = visible_files(root)
    with pytest.raises(ModelMismatchError, match="--reindex"):
        IndexStore.open(root, model_meta=other)
    assert visible_files(root) == before
    store = IndexStore.open(root, model_meta=other, reindex=True)
    assert store.meta["model_id"] == "b" * 64
    assert store.done() == {}
    assert store.read_table("keyframes").empty
    assert not (root / "images").exists() or not any((root / "images").iterdir())


def test_second_writer_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    first = IndexStore.open(root, model_meta=MODEL, create=True)
    with pytest.raises(UsageError, match="another process"):
        IndexStore.open(root, model_meta=MODEL)
    IndexStore.open(root).read_table("videos")  # readers are never blocked
    first.close()
    IndexStore.open(root, model_meta=MODEL).close()


def test_exception_mid_write_leaves_no_visible_file(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=2, per_video=3)
    before = codes_by_id(root)
    files_before = visible_files(root)
    real_write = pq.write_table

    def write_half_then_fail(table, where, **kwargs):
        real_write(table.slice(0, 1), where, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    store = IndexStore.open(root, model_meta=MODEL)
    content = content_of("new")
    with pytest.raises(OSError, match="No space"):
        store.write_video(
            {"video_path": "new.mp4", "content_hash": content, "status": "ok"},
            keyframes_for(content, np.ones((3, 6), np.uint8)),
        )
    assert visible_files(root) == files_before  # no part, no temp file
    monkeypatch.undo()
    store.close()
    assert codes_by_id(root) == before


def test_stale_temps_and_orphan_parts_are_ignored_then_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    build_index(root, n_videos=2, per_video=3)
    expected = codes_by_id(root)
    # what a kill -9 can leave: temp files, a keyframes part whose videos part never came
    (root / "keyframes" / ".tmp-abc123.parquet").write_bytes(b"PAR1 half a file")
    (root / "videos" / ".tmp-def456.parquet").write_bytes(b"")
    table = pq.read_table(next((root / "keyframes").glob("part-*.parquet")))
    table = table.set_column(2, "video_path", pa.array(["orphan.mp4"] * table.num_rows))
    orphan = root / "keyframes" / f"part-{part_key('orphan.mp4')}.parquet"
    pq.write_table(table, orphan)
    (root / "images" / "0123456789abcdef").mkdir(parents=True)
    (root / "images" / "0123456789abcdef" / ".tmp-x.jpg").write_bytes(b"\xff\xd8")
    # readers see exactly the committed rows, and DuckDB's part-* glob skips temps
    assert codes_by_id(root) == expected
    assert len(Index.open(root)) == 6
    query = f"SELECT count(*) FROM read_parquet('{root}/videos/part-*.parquet')"
    assert duckdb.connect().execute(query).fetchone()[0] == 2
    # the next writer cleans up
    IndexStore.open(root, model_meta=MODEL).close()
    assert not orphan.exists()
    assert not list(root.rglob(".tmp-*"))
    assert not (root / "images" / "0123456789abcdef").exists()
    assert codes_by_id(root) == expected


WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np
from test_index_helpers import MODEL, content_of, keyframes_for
from vidhash.index import IndexStore
store = IndexStore.open({root!r}, model_meta=MODEL, create=True)
done = store.done()
rng = np.random.default_rng(0)
for v in range(40):
    codes = rng.integers(0, 256, (300, 6), dtype=np.uint8)
    path = f"clip{{v}}.mp4"
    if path in done:
        continue
    content = content_of(path)
    frames = keyframes_for(content, codes, step=0.5)
    for kf in frames[:3]:
        store.write_image(kf["keyframe_id"], np.full((32, 32, 3), v, np.uint8))
    store.write_video({{"video_path": path, "content_hash": content, "status": "ok"}}, frames)
    print(v, flush=True)
print("finished", flush=True)
"""


def run_writer(root: Path, kill_after_line: int | None, delay: float, probe_every: int = 0) -> bool:
    code = WRITER.format(tests=str(TESTS), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    finished = False
    try:
        for n, line in enumerate(proc.stdout):
            if line.strip() == "finished":
                finished = True
            elif probe_every and n % probe_every == 0:
                # a search opened while the writer runs sees whole inputs only
                index = Index.open(root)
                assert len(index) % 300 == 0 and index.keyframes["keyframe_id"].is_unique
            if kill_after_line is not None and n >= kill_after_line:
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    return finished


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert run_writer(reference, None, 0, probe_every=4)
    crashed = tmp_path / "crashed"
    rng = np.random.default_rng(11)
    kills = 0
    for line in (0, 6, 13, 22, 31):
        if run_writer(crashed, line, float(rng.uniform(0, 0.02))):
            break
        kills += 1
        # after every kill, readers see only whole, committed inputs
        partial = codes_by_id(crashed)
        assert all(v[0].startswith("clip") for v in partial.values())
        assert len(partial) % 300 == 0
    assert kills >= 3
    while not run_writer(crashed, None, 0):
        pass
    assert codes_by_id(crashed) == codes_by_id(reference)
    ref_videos = IndexStore.open(reference).read_table("videos")
    got_videos = IndexStore.open(crashed).read_table("videos")
    pd.testing.assert_frame_equal(ref_videos, got_videos)
    assert visible_files(crashed / "images") == visible_files(reference / "images")
    assert not list(crashed.rglob(".tmp-*"))


def test_damaged_part_is_skipped_by_readers_and_redone_by_the_writer(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    written = build_index(root, n_videos=3, per_video=2)
    victim = sorted(written)[0]
    key = part_key(victim)
    (root / "videos" / f"part-{key}.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    reader = IndexStore.open(root)
    assert victim not in reader.done() and len(reader.done()) == 2
    assert len(Index.open(root)) == 4  # its keyframes are not served without a videos row
    writer = IndexStore.open(root, model_meta=MODEL)
    assert victim not in writer.done()
    assert not (root / "keyframes" / f"part-{key}.parquet").exists()
    writer.close()
    build_index(root, n_videos=3, per_video=2)  # the rerun indexes it again
    assert len(Index.open(root)) == 6


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "a", "b"), ("b", "c", "a")])
def test_duplicate_owner_does_not_depend_on_order(tmp_path: Path, order) -> None:
    """The smallest path owns identical content, whatever order the inputs finish in."""
    root = tmp_path / "idx"
    content = content_of("same bytes")
    frames = keyframes_for(content, np.arange(12, dtype=np.uint8).reshape(2, 6))
    with IndexStore.open(root, model_meta=MODEL, create=True) as store:
        for name in order:
            store.write_video(
                {
                    "video_path": f"{name}.mp4",
                    "content_hash": content,
                    "status": "ok",
                    "duration": 2.0,
                },
                frames,
            )
        videos = store.read_table("videos").set_index("video_path")
    assert videos["status"].to_dict() == {"a.mp4": "ok", "b.mp4": "duplicate", "c.mp4": "duplicate"}
    assert set(videos["error"].dropna()) == {"same content as a.mp4"}
    keyframes = IndexStore.open(root).read_table("keyframes")
    assert list(keyframes["video_path"]) == ["a.mp4", "a.mp4"]
    assert not list(root.rglob(".tmp-*"))
    assert len(list((root / "keyframes").glob("part-*"))) == 1
    with IndexStore.open(root, model_meta=MODEL) as store:
        store.drop_videos(["a.mp4"])
        videos = store.read_table("videos").set_index("video_path")
    assert videos["status"].to_dict() == {"b.mp4": "ok", "c.mp4": "duplicate"}
    assert videos.loc["c.mp4", "error"] == "same content as b.mp4"
    assert set(IndexStore.open(root).read_table("keyframes")["video_path"]) == {"b.mp4"}


def test_keyframes_as_an_arrow_table_and_duplicate_ids(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    content = content_of("arrow")
    frames = keyframes_for(content, np.arange(18, dtype=np.uint8).reshape(3, 6))
    table = pa.table(
        {
            "keyframe_id": [f["keyframe_id"] for f in frames] + [frames[0]["keyframe_id"]],
            "pts_time": [2.0, 0.0, 1.0, 9.0],  # out of order, and one id twice
            "code": pa.array([bytes(f["code"]) for f in frames] + [b"\xff" * 6], pa.binary(6)),
        }
    )
    with IndexStore.open(root, model_meta=MODEL, create=True) as store:
        store.write_video({"video_path": "a.mp4", "content_hash": content, "status": "ok"}, table)
        stored = store.read_table("keyframes")
        videos = store.read_table("videos")
    assert list(stored["pts_time"]) == [0.0, 1.0, 2.0]  # time order, first of a repeated id
    assert stored["keyframe_id"].is_unique and videos.loc[0, "n_keyframes"] == 3
    assert bytes(stored.loc[stored["pts_time"] == 2.0, "code"].item()) == bytes(frames[0]["code"])
    assert stored["frame_index"].isna().all() and (stored["model_id"] == MODEL["model_id"]).all()
