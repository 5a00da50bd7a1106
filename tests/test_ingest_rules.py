"""The rules `vidhash extract` and `vidhash index` share because they are one engine:
same keyframes, same JPEG bytes, skipped rows, feeding options that never re-decode, a
touched file hashed once, and reruns that heal damaged parts and images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import media
import pandas as pd
import pytest
from indexes import read_keyframes, read_videos, run_main

import vidhash.ingest.plan
from vidhash.fsutil import content_hash
from vidhash.index.store.layout import part_key
from vidhash.ingest import IngestOptions, build_index, extract

EVERY_SECOND = IngestOptions(every=1.0)
MEDIA = ["h264.mp4", "vfr.mkv", "rotated.mp4", "still.jpg", "still.png"]


@pytest.fixture()
def model(default_model):
    return default_model


@pytest.fixture()
def corpus(media_dir: Path, tmp_path: Path) -> Path:
    """Good media, a non-video file and a dangling symlink: every input is ok or skipped."""
    root = media.copy_media(media_dir, MEDIA, tmp_path / "videos")
    (root / "notes.txt").write_text("not a video")
    os.symlink(root / "gone.mp4", root / "dangling.mp4")
    return root


def test_extract_and_index_give_the_same_keyframes_and_jpeg_bytes(corpus, tmp_path, model):
    extract(corpus, tmp_path / "x", EVERY_SECOND, progress=False)
    build_index(corpus, tmp_path / "i", model, EVERY_SECOND, progress=False)
    columns = ["video_path", "keyframe_id", "pts_time", "frame_index", "width", "height"]
    extracted = read_keyframes(tmp_path / "x")[[*columns, "image_path"]]
    indexed = read_keyframes(tmp_path / "i")[[*columns, "image_path"]]
    pd.testing.assert_frame_equal(extracted, indexed)
    assert len(extracted) >= 4 + 4 + 2 + 2
    assert set(extracted["video_path"]) == {str(corpus / name) for name in MEDIA}  # absolute
    for rel in extracted["image_path"]:
        assert (tmp_path / "x" / rel).read_bytes() == (tmp_path / "i" / rel).read_bytes()


@pytest.mark.parametrize("command", ["extract", "index"])
def test_skipped_inputs_are_rows_and_exit_0(corpus, tmp_path, capsys, command):
    out = tmp_path / "out"
    code, stdout, _ = run_main([command, str(corpus), "--out", str(out), "--json"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert (summary["ok"], summary["skipped"], summary["exit_code"]) == (5, 2, 0)
    videos = read_videos(out)
    assert videos.loc["dangling.mp4", ["status", "error"]].tolist() == [
        "skipped",
        "dangling symlink",
    ]
    assert videos.loc["notes.txt", "status"] == "skipped"
    assert "not a video" in videos.loc["notes.txt", "error"]
    assert videos.loc["notes.txt", "video_path"] == str(corpus / "notes.txt")
    again = json.loads(run_main([command, str(corpus), "--out", str(out), "--json"], capsys)[1])
    assert (again["processed"], again["unchanged"]) == (0, 7)


def test_jpeg_quality_and_other_feeding_options_do_not_decode_again(corpus, tmp_path, model):
    build_index(corpus, tmp_path / "i", model, EVERY_SECOND, progress=False)
    extract(corpus, tmp_path / "x", EVERY_SECOND, progress=False)
    feeding = IngestOptions(every=1.0, jpeg_quality=40, workers=1, batch_size=3, queue_size=2)
    again = build_index(corpus, tmp_path / "i", model, feeding, progress=False)
    assert (again.processed, again.unchanged, again.keyframes) == (0, 7, 0)
    again = extract(corpus, tmp_path / "x", feeding, progress=False)
    assert (again.processed, again.unchanged, again.keyframes) == (0, 7, 0)
    other = build_index(corpus, tmp_path / "i", model, IngestOptions(every=2.0), progress=False)
    assert other.processed == 5  # a sampling option: every video and image again


def test_a_touched_file_is_hashed_once_then_trusted(corpus, tmp_path, model, monkeypatch):
    hashed: list[str] = []

    def spy(path):
        hashed.append(Path(path).name)
        return content_hash(path)

    monkeypatch.setattr(vidhash.ingest.plan, "content_hash", spy)
    out = tmp_path / "i"
    build_index(corpus, out, model, progress=False)
    assert sorted(hashed) == sorted(MEDIA)
    hashed.clear()
    os.utime(corpus / "h264.mp4", ns=(1_000_000_000, 1_000_000_000))
    touched = build_index(corpus, out, model, progress=False)
    assert (touched.processed, hashed) == (0, ["h264.mp4"])
    assert read_videos(out).loc["h264.mp4", "mtime_ns"] == 1_000_000_000
    hashed.clear()
    again = build_index(corpus, out, model, progress=False)
    assert (again.processed, hashed) == (0, [])


def test_a_rerun_heals_a_truncated_part_and_a_deleted_image(corpus, tmp_path, model):
    out = tmp_path / "i"
    build_index(corpus, out, model, progress=False)
    before = read_keyframes(out)
    part = out / "keyframes" / f"part-{part_key(str(corpus / 'h264.mp4'))}.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    still = before[before["video_path"].str.endswith("still.png")]["image_path"].item()
    jpeg = (out / still).read_bytes()
    (out / still).unlink()

    healed = build_index(corpus, out, model, progress=False)
    assert healed.processed == 2 and healed.unchanged == 5
    damaged = {Path(d["path"]).name: d["reason"] for d in healed.check["damaged"]}
    assert damaged == {"h264.mp4": "keyframes part unreadable", "still.png": damaged["still.png"]}
    assert "missing" in damaged["still.png"] and healed.check["repaired"] == 2
    pd.testing.assert_frame_equal(read_keyframes(out), before)
    assert (out / still).read_bytes() == jpeg
    assert build_index(corpus, out, model, progress=False).processed == 0


def test_verify_reads_every_file_and_repairs(corpus, tmp_path, capsys):
    out = tmp_path / "i"
    assert run_main(["index", str(corpus), "--out", str(out), "--json"], capsys)[0] == 0
    kf = read_keyframes(out)
    still = kf[kf["video_path"].str.endswith("still.jpg")]["image_path"].item()
    (out / still).write_bytes(b"\xff\xd8\xff\xe0 not the JPEG it was")  # there, but damaged

    quick = json.loads(run_main(["index", str(corpus), "--out", str(out), "--json"], capsys)[1])
    assert quick["processed"] == 0 and quick["check"]["damaged"] == []  # only --verify reads

    code, stdout, stderr = run_main(["index", str(corpus), "--out", str(out), "--verify"], capsys)
    assert code == 0
    assert "check: 5 keyframes parts, 7 images; 1 damaged, 1 repaired" in stderr
    assert f"damaged: {corpus / 'still.jpg'}: image {still} missing or unreadable" in stderr
    assert "(1 processed, 6 unchanged, 0 removed)" in stdout
    from vidhash.media import read_rgb

    assert read_rgb(out / still).shape == (224, 224, 3)
