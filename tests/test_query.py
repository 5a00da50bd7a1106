"""Queries encoded by the index's own model: the Python API, and indexes whose model this
vidhash no longer ships (an index built by an older `default`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import media
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from indexes import run_main

import vidhash
from vidhash.errors import ModelMismatchError
from vidhash.ingest import IngestOptions, build_index
from vidhash.media import read_rgb

OLD_SHA = "0123456789ab" + "f" * 52


@pytest.fixture(scope="module")
def index(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("query")
    videos = media.copy_media(media_dir, ["h264.mp4", "still.png", "still.jpg"], root / "videos")
    build_index(videos, root / "index", "default", IngestOptions(every=1.0), progress=False)
    return root / "index"


def test_search_image_and_search_frame(index: Path, media_dir: Path) -> None:
    found = vidhash.Index.open(index)
    top = found.search_image(media_dir / "still.png", k=3)[0]
    assert top.distance == 0 and top.video_path.endswith("still.png")
    assert found.descriptor_dims == 256 and top.score == pytest.approx(1.0, abs=2e-3)
    by_codes = found.search_image(media_dir / "still.png", k=3, rerank=False)
    assert by_codes[0].keyframe_id == top.keyframe_id and by_codes[0].score == top.score
    pixels = read_rgb(media_dir / "still.jpg")
    assert found.search_image(pixels, k=1)[0].video_path.endswith("still.jpg")
    # the frame on screen at 1 s is the keyframe indexed at 1 s: the same code
    hit = found.search_frame(media_dir / "h264.mp4", 1.0, k=1)[0]
    assert (hit.distance, hit.pts_time) == (0, 1.0) and hit.video_path.endswith("h264.mp4")


def _made_by_an_older_default(index: Path, copy: Path) -> Path:
    """A copy of the index whose meta says an older shipped `default` made it."""
    shutil.copytree(index, copy)
    meta = pq.read_table(copy / "meta" / "meta.parquet")
    column = pa.array([OLD_SHA], meta.schema.field("model_id").type)
    meta = meta.set_column(meta.schema.get_field_index("model_id"), "model_id", column)
    pq.write_table(meta, copy / "meta" / "meta.parquet")
    return copy


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_an_index_of_an_older_model_says_how_to_rebuild(index, media_dir, tmp_path, capsys):
    old = _made_by_an_older_default(index, tmp_path / "old")
    expected = f"default (sha256 {OLD_SHA[:12]}, vidhash {vidhash.__version__})"
    rebuild = f"vidhash index INPUT --out {old} --reindex"

    # the meta changed behind the search file's back: the first open rebuilds it, once
    kid = vidhash.Index.open(old).keyframes["keyframe_id"].iloc[0]
    before = _files(old)
    assert run_main(["search", str(old), "--keyframe", kid], capsys)[0] == 0  # needs no model

    for argv in (
        ["search", str(old), "--image", str(media_dir / "still.png")],
        ["search", str(old), "--video", str(media_dir / "h264.mp4"), "--at", "1"],
        ["index", str(media_dir / "still.png"), "--out", str(old)],
    ):
        code, _, err = run_main(argv, capsys)
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert expected in err and rebuild in err, err
    with pytest.raises(ModelMismatchError, match="--reindex"):
        vidhash.Index.open(old).search_image(media_dir / "still.png")
    assert _files(old) == before  # nothing written

    argv = ["index", str(media_dir / "still.png"), "--out", str(old), "--reindex"]
    assert run_main(argv, capsys)[0] == 0
    hits = vidhash.Index.open(old).search_image(media_dir / "still.png", k=1)
    assert hits[0].distance == 0
