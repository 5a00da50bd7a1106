"""``vidhash extract`` end to end: layout, keyframes table, status rows, rerun/resume, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import media
import pandas as pd
import pyarrow.parquet as pq
import pytest

from vidhash.fsutil import content_hash
from vidhash.index.store.layout import part_key
from vidhash.ingest import IngestOptions, extract

FAST = IngestOptions(every=1.0, size=32)


@pytest.fixture()
def inputs(tmp_path: Path, media_dir: Path) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("h264.mp4", "rotated.mp4", "h264-cut.mp4", "zero.mp4", "random.mp4", "text.avi",
                 "still.jpg"):  # fmt: skip
        shutil.copy(media_dir / name, root / name)
    (root / "README.md").write_text("not a video")
    return root


def statuses(out: Path) -> dict[str, tuple[str, str | None]]:
    rows = pq.read_table(out / "videos").to_pylist()
    return {Path(r["video_path"]).name: (r["status"], r["error"]) for r in rows}


def test_extract_writes_manifest_images_and_status_rows(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = extract(inputs, out, FAST, progress=False)
    rows = statuses(out)
    assert rows["h264.mp4"] == ("ok", None)
    assert rows["rotated.mp4"] == ("ok", None)
    assert rows["still.jpg"] == ("ok", None)
    assert rows["h264-cut.mp4"][0] == "partial" and rows["h264-cut.mp4"][1]
    for name in ("zero.mp4", "random.mp4", "text.avi"):
        assert rows[name][0] == "failed" and rows[name][1], name
    assert rows["README.md"][0] == "skipped"
    assert (summary.ok, summary.partial, summary.failed, summary.skipped) == (3, 1, 3, 1)
    assert summary.exit_code == 1

    manifest = pd.read_parquet(out / "keyframes")
    h264 = manifest[manifest.video_path == str(inputs / "h264.mp4")].sort_values("pts_time")
    video_hash = content_hash(inputs / "h264.mp4")
    assert list(h264.pts_time) == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert list(h264.keyframe_id) == [f"{video_hash[:16]}-{ms:09d}" for ms in (0, 1000, 2000, 3000)]
    assert set(h264.video_id) == {video_hash}
    assert list(h264.frame_index) == [0, 10, 20, 30]
    assert list(h264.image_path)[1] == f"images/{video_hash[:16]}/{video_hash[:16]}-000001000.jpg"
    rotated = manifest[manifest.video_path == str(inputs / "rotated.mp4")]
    assert set(zip(rotated.width, rotated.height, rotated.rotation, strict=True)) == {(96, 64, 90)}
    assert len(manifest[manifest.video_path == str(inputs / "h264-cut.mp4")]) >= 1
    import cv2

    for rel in manifest.image_path:
        image = cv2.imread(str(out / rel))
        assert image is not None and image.shape == (32, 32, 3)
    assert not list(out.rglob(".tmp-*"))


def test_rerun_does_no_repeated_work_and_changed_file_is_redone(
    inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    extract(inputs, out, FAST, progress=False)
    parts = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    again = extract(inputs, out, FAST, progress=False)
    assert again.processed == 0 and again.unchanged == 8  # README.md's skipped row too
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == parts

    # Same path, new content: processed again, its manifest rows replaced.
    media.make_video(inputs / "h264.mp4", seconds=2, fps=10, gop=10, frames_from=["rocket"])
    changed = extract(inputs, out, FAST, progress=False)
    assert changed.processed == 1
    manifest = pd.read_parquet(out / "keyframes")
    h264 = manifest[manifest.video_path == str(inputs / "h264.mp4")]
    assert set(h264.video_id) == {content_hash(inputs / "h264.mp4")}
    assert sorted(h264.pts_time) == pytest.approx([0.0, 1.0])

    # Touched but identical content: re-hashed, not re-decoded.
    os.utime(inputs / "rotated.mp4")
    touched = extract(inputs, out, FAST, progress=False)
    assert touched.processed == 0 and touched.unchanged == 8

    # Other sampling options: every video and image is redone.
    other = extract(inputs, out, IngestOptions(every=2.0, size=32), progress=False)
    assert other.processed == 7


def test_interrupted_run_resumes(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(inputs, out, FAST, progress=False)
    # Simulate a crash after h264.mp4's images and manifest part but before its commit row,
    # plus a temp file left behind by a killed writer.
    (out / "videos" / f"part-{part_key(str(inputs / 'h264.mp4'))}.parquet").unlink()
    (out / "keyframes" / ".tmp-abc.parquet").write_bytes(b"partial")
    resumed = extract(inputs, out, FAST, progress=False)
    assert resumed.processed == 1 and resumed.unchanged == 7
    assert not list(out.rglob(".tmp-*"))
    manifest = pd.read_parquet(out / "keyframes")
    assert manifest.keyframe_id.is_unique


def test_parallel_workers_match_serial(inputs: Path, tmp_path: Path) -> None:
    serial = extract(inputs, tmp_path / "a", FAST, progress=False)
    parallel = extract(inputs, tmp_path / "b", replace(FAST, workers=2), progress=False)
    assert serial.keyframes == parallel.keyframes
    cols = ["keyframe_id", "pts_time", "image_path"]
    a = pd.read_parquet(tmp_path / "a" / "keyframes")[cols].sort_values("keyframe_id")
    b = pd.read_parquet(tmp_path / "b" / "keyframes")[cols].sort_values("keyframe_id")
    assert a.reset_index(drop=True).equals(b.reset_index(drop=True))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vidhash.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_json_summary_and_exit_codes(inputs: Path, tmp_path: Path, media_dir: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("extract", str(inputs), "--out", str(out), "--every", "1", "--size", "32",
                     "--json")  # fmt: skip
    assert result.returncode == 1, result.stderr  # some inputs failed
    summary = json.loads(result.stdout)
    assert summary["failed"] == 3 and summary["partial"] == 1 and summary["exit_code"] == 1

    ok = run_cli("extract", str(media_dir / "h264.mp4"), "--out", str(tmp_path / "ok"),
                 "--count", "2", "--mode", "exact", "--no-progress")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2 keyframes" in ok.stdout

    both = run_cli("extract", str(inputs), "--out", str(out), "--every", "1", "--count", "2")
    assert both.returncode == 2 and both.stderr.startswith("error:")
    missing = run_cli("extract", str(tmp_path / "nope"), "--out", str(out))
    assert missing.returncode == 2 and "not found" in missing.stderr
    bad = run_cli("extract", str(inputs), "--out", str(out), "--jpeg-quality", "0")
    assert bad.returncode == 2


@pytest.mark.shared
def test_shared_videos_are_all_recorded(shared_data: Path, tmp_path: Path) -> None:
    videos = shared_data / "videos"
    expected = sorted(p.name for p in videos.iterdir() if p.suffix != ".md")
    assert len(expected) == 25
    summary = extract(videos, tmp_path / "out", IngestOptions(every=2.0, size=64), progress=False)
    rows = statuses(tmp_path / "out")
    assert sorted(n for n in rows if not n.endswith(".md")) == expected
    for name in expected:
        status, error = rows[name]
        assert status in ("ok", "partial", "failed")
        assert (status == "ok") == (error is None), (name, status, error)
    assert rows["tree-partly-broken.avi"][0] == "partial"
    assert rows["no-duration.webm"][0] == "ok"
    assert summary.keyframes > 100


def test_deleted_input_rows_are_dropped(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(inputs, out, FAST, progress=False)
    (inputs / "rotated.mp4").unlink()
    again = extract(inputs, out, FAST, progress=False)
    assert again.removed == 1 and again.processed == 0
    assert "rotated.mp4" not in statuses(out)
    manifest = pd.read_parquet(out / "keyframes")
    assert not manifest.video_path.str.endswith("rotated.mp4").any()
