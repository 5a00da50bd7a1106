"""`vidhash annotate`: scopes (keyframe, video, image, time range), multi-label, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_index_helpers import MODEL, build_index, content_of, keyframes_for

from vidhash.cli import main
from vidhash.errors import InputError
from vidhash.index import IndexStore
from vidhash.index.search.annotate import annotate
from vidhash.index.search.index import Index


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    """clip0..clip2 (5 keyframes at 0..4 s), an image, a duplicate and a same-named clip."""
    root = tmp_path / "idx"
    build_index(root, n_videos=3, per_video=5)
    with IndexStore.open(root, model_meta=MODEL) as store:
        photo = content_of("photo")
        store.write_video(
            {
                "video_path": "photos/cat.jpg",
                "content_hash": photo,
                "status": "ok",
                "kind": "image",
            },
            keyframes_for(photo, np.zeros((1, 6), np.uint8)),
        )
        other = content_of("other/clip0.mp4")
        store.write_video(
            {"video_path": "other/clip0.mp4", "content_hash": other, "status": "ok"},
            keyframes_for(other, np.ones((2, 6), np.uint8)),
        )
        clip1 = content_of("videos/clip1.mp4")
        store.write_video(
            {"video_path": "copies/clip1-copy.mp4", "content_hash": clip1, "status": "ok"},
            keyframes_for(clip1, np.ones((5, 6), np.uint8)),
        )
        store.write_video(
            {
                "video_path": "broken.mp4",
                "content_hash": content_of("b"),
                "status": "failed",
                "error": "no video stream",
            }
        )
    return root


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def kid(video_path: str, seconds: float) -> str:
    from vidhash.fsutil import keyframe_id

    return keyframe_id(content_of(video_path), seconds)


def labels_of(root: Path) -> set[tuple[str, str, str]]:
    table = IndexStore.open(root).read_table("annotations")
    return set(map(tuple, table[["keyframe_id", "concept", "group"]].values))


def test_every_scope_and_multi_label(index: Path, tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "labels.csv",
        "concept,group,keyframe_id,video,start,end\n"
        f"car,local,{kid('videos/clip0.mp4', 3)},,,\n"
        "person,local,,videos/clip0.mp4,1,2\n"  # time range, inclusive
        "street,global,,clip2.mp4,,\n"  # unique file name, whole video
        "person,local,,clip2.mp4,,0.5\n"  # open start
        "cat,local,,cat.jpg,,\n"  # an image
        "beach,global,,copies/clip1-copy.mp4,3,\n"  # a duplicate labels its content
        "\n",
    )
    summary = annotate(index, csv_path)
    expected = {
        (kid("videos/clip0.mp4", 3), "car", "local"),
        (kid("videos/clip0.mp4", 1), "person", "local"),
        (kid("videos/clip0.mp4", 2), "person", "local"),
        *((kid("videos/clip2.mp4", t), "street", "global") for t in range(5)),
        (kid("videos/clip2.mp4", 0), "person", "local"),
        (kid("photo", 0), "cat", "local"),
        (kid("videos/clip1.mp4", 3), "beach", "global"),
        (kid("videos/clip1.mp4", 4), "beach", "global"),
    }
    assert labels_of(index) == expected
    assert summary.rows == 6 and summary.labels == len(expected)
    assert summary.concepts["street"] == 5
    # the join: search hits carry their concepts
    search = Index.open(index)
    query = kid("videos/clip2.mp4", 0)
    hit = search.search(search.code_of(query), k=1)[0]
    assert hit.keyframe_id == query and hit.concepts == ["person", "street"]
    assert search.search(search.code_of(kid("videos/clip1.mp4", 0)), k=1)[0].concepts == []


def test_relabelling_replaces_the_table(index: Path, tmp_path: Path) -> None:
    annotate(index, write_csv(tmp_path / "a.csv", "concept,group,video\ncar,local,clip2.mp4\n"))
    annotate(index, write_csv(tmp_path / "b.csv", "concept,group,video\nsea,global,cat.jpg\n"))
    assert labels_of(index) == {(kid("photo", 0), "sea", "global")}


BAD_ROWS = [
    ("car,local,nope-000000000,,,", "unknown keyframe_id"),
    ("car,local,,missing.mp4,,", "not in the index"),
    ("car,local,,clip0.mp4,,", "ambiguous"),
    ("car,local,,videos/clip0.mp4,abc,", "not a number"),
    ("car,local,,videos/clip0.mp4,3,1", "before start"),
    (",local,,videos/clip0.mp4,,", "must not be empty"),
    ("car,local,,,,", "no keyframe_id or video"),
    (f"car,local,{kid('videos/clip0.mp4', 0)},videos/clip0.mp4,,", "not both"),
    ("car,global,,videos/clip2.mp4,,", "in group"),
    ("car,local,,broken.mp4,,", "failed"),
    ("car,local,,videos/clip0.mp4,1,2,extra", "more fields"),
]


def test_malformed_rows_listed_and_nothing_written(index: Path, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", "concept,group,video\ncar,local,clip2.mp4\n")
    annotate(index, good)
    before = (index / "annotations" / "annotations.parquet").read_bytes()
    header = "concept,group,keyframe_id,video,start,end\n"
    lines = [f"car,local,{kid('videos/clip1.mp4', 0)},,,"] + [row for row, _ in BAD_ROWS]
    bad = write_csv(tmp_path / "bad.csv", header + "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        annotate(index, bad)
    message = str(err.value)
    assert f"{len(BAD_ROWS)} bad label row(s), nothing written" in message
    for n, (_, reason) in enumerate(BAD_ROWS):
        assert f"line {n + 3}: " in message
        assert reason in message, reason
    assert "line 2:" not in message  # the good row is not blamed
    assert (index / "annotations" / "annotations.parquet").read_bytes() == before
    assert not list(index.rglob(".tmp-*"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty labels file"),
        ("concept,group\ncar,local\n", "header must have"),
        ("concept,video\ncar,clip2.mp4\n", "header must have"),
        ("concept,group,video,colour\ncar,local,clip2.mp4,red\n", "unknown column"),
    ],
)
def test_malformed_files_rejected(index: Path, tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        annotate(index, write_csv(tmp_path / "x.csv", text))
    assert not (index / "annotations").exists()


def test_not_utf8_and_missing_file(index: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("concept,group,video\ncaf\xe9,local,clip2.mp4\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        annotate(index, path)
    with pytest.raises(InputError, match="not found"):
        annotate(index, tmp_path / "absent.csv")


def test_cli_one_line_errors_and_json(index: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", str(index), "--labels", str(tmp_path / "absent.csv")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: labels file not found") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", str(tmp_path / "no-index"), "--labels", str(tmp_path / "absent.csv")])
    assert exit_info.value.code == 2
    assert "no vidhash index" in capsys.readouterr().err
    good = write_csv(tmp_path / "g.csv", "concept,group,video,start,end\ncar,local,clip2.mp4,1,3\n")
    main(["annotate", str(index), "--labels", str(good), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["labels"] == 3 and summary["concepts"] == {"car": 3}


def test_video_given_by_another_spelling_of_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip0.mp4").write_bytes(b"stand-in bytes")
    root = tmp_path / "idx"
    build_index(root, n_videos=1, per_video=2)  # indexed as the relative videos/clip0.mp4
    absolute = tmp_path / "videos" / "clip0.mp4"
    labels = write_csv(tmp_path / "l.csv", f"concept,group,video\nsea,global,{absolute}\n")
    assert annotate(root, labels).labels == 2


def test_a_row_shorter_than_the_header_is_a_listed_bad_row(tmp_path) -> None:
    import pandas as pd

    from vidhash.errors import InputError
    from vidhash.index.search.annotate import resolve_labels

    labels = tmp_path / "short.csv"
    labels.write_text("concept,group,video\nx\n")
    keyframes = pd.DataFrame({"keyframe_id": [], "video_id": [], "pts_time": []})
    videos = pd.DataFrame({"video_path": [], "content_hash": [], "status": []})
    with pytest.raises(InputError, match="line 2: concept and group must not be empty"):
        resolve_labels(labels, keyframes, videos)
