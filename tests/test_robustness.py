"""Hostile input: the suite builds its own corpus of damaged files, odd geometry and awkward
paths, then runs `vidhash extract` and `vidhash index` over it as a user would.

Nothing may crash, every good file must be indexed, every bad one recorded with a reason,
and no traceback may reach the user.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import av
import media
import numpy as np
import pandas as pd
import pytest
from indexes import by_name
from indexes import run_vidhash as vidhash

GOOD = {
    "one-frame.mp4",
    "tiny-32x18.mp4",
    "wide-1920x200.mp4",
    "odd-97x61.mkv",
    "portrait-rotate90.mp4",
    "uhd-3840x2160.mp4",
    "ünïcode name with spaces.mp4",
    "UPPER.MP4",
}
FAILED = {
    "zero.mp4",
    "half-no-moov.mp4",
    "random.mp4",
    "text.avi",
    "audio-only.mp4",
}
# Damaged part way: either partial (frames before the damage kept) or, where the
# demuxer recovers everything it can, ok; never a crash.
DAMAGED = {"faststart-cut60.mp4", "cut50.mkv", "bitflips.mp4"}


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10) * 3000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _faststart(src: Path, dst: Path) -> None:
    """Remux with the moov atom at the front, as web video is published."""
    with (
        av.open(str(src)) as inp,
        av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)


def _flip_bits(src: Path, dst: Path, seed: int = 3) -> None:
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    start = len(data) // 3
    for pos in rng.integers(start, len(data) - 16, size=200):
        data[pos] ^= 0xFF
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    mk = media.make_video
    mk(root / "one-frame.mp4", seconds=0.1, fps=10)
    mk(root / "tiny-32x18.mp4", size=(32, 18), seconds=2)
    mk(root / "wide-1920x200.mp4", size=(1920, 200), seconds=2, fps=5)
    mk(root / "odd-97x61.mkv", codec="ffv1", size=(97, 61), seconds=2)
    mk(root / "portrait-rotate90.mp4", size=(64, 96), seconds=2, rotate=90)  # upright size
    mk(root / "uhd-3840x2160.mp4", size=(3840, 2160), seconds=1, fps=2)
    mk(root / "ünïcode name with spaces.mp4", seconds=2, frames_from=("rocket",))
    mk(root / "UPPER.MP4", seconds=2, frames_from=("coffee",))

    work = root.parent / f"{root.name}-sources"
    work.mkdir()
    plain = mk(work / "plain.mp4", seconds=6, fps=10, gop=10)
    (root / "zero.mp4").write_bytes(b"")
    media.truncate(plain, 0.5, root / "half-no-moov.mp4")
    _faststart(plain, work / "faststart.mp4")
    media.truncate(work / "faststart.mp4", 0.6, root / "faststart-cut60.mp4")
    media.truncate(mk(work / "full.mkv", seconds=6, fps=10, gop=10), 0.5, root / "cut50.mkv")
    _flip_bits(mk(work / "flip.mp4", seconds=6, fps=10, gop=10), root / "bitflips.mp4")
    media.random_bytes(root / "random.mp4")
    (root / "text.avi").write_text("not a video at all\n" * 100)
    _audio_only(root / "audio-only.mp4")

    (root / "x.mp4").mkdir()  # a directory with a video's name
    (root / "loop").mkdir()
    os.symlink(root / "loop", root / "loop" / "again")  # a symlink loop
    os.symlink(root / "missing.mp4", root / "dangling.mp4")
    unreadable = mk(root / "unreadable.mp4", seconds=2, frames_from=("astronaut",))
    unreadable.chmod(0)
    (root / "notes.txt").write_text("a non-video file")
    return root


def check_outcomes(table: pd.DataFrame) -> None:
    for name in GOOD:
        assert table.loc[name, "status"] == "ok", (name, table.loc[name].to_dict())
    for name in FAILED:
        assert table.loc[name, "status"] == "failed", (name, table.loc[name].to_dict())
        assert str(table.loc[name, "error"]).strip(), name
    for name in DAMAGED:
        assert table.loc[name, "status"] in ("partial", "ok"), (name, table.loc[name].to_dict())
        if table.loc[name, "status"] == "partial":
            assert str(table.loc[name, "error"]).strip()
    # Running as root, a chmod 000 file is still readable: then it is simply indexed.
    expected = "ok" if os.geteuid() == 0 else "failed"
    if "unreadable.mp4" in table.index:
        assert table.loc["unreadable.mp4", "status"] in (expected, "skipped")


@pytest.mark.slow
def test_index_survives_the_hostile_corpus(hostile, tmp_path):
    result = vidhash("index", str(hostile), "--out", str(tmp_path / "index"), "--json")
    assert result.returncode == 1, result.stderr[-3000:]  # 1: finished, some inputs failed
    assert "Traceback" not in result.stderr + result.stdout
    table = by_name(pd.read_parquet(tmp_path / "index" / "videos"))
    check_outcomes(table)
    kf = pd.read_parquet(tmp_path / "index" / "keyframes")
    indexed = set(kf["video_path"].map(lambda p: Path(p).name))
    assert indexed >= GOOD
    assert not (FAILED & indexed)
    assert kf["keyframe_id"].is_unique
    # The portrait clip comes out upright: the stored keyframe matches the display
    # geometry (taller than wide).
    portrait = kf[kf["video_path"].str.endswith("portrait-rotate90.mp4")].iloc[0]
    assert portrait["height"] > portrait["width"]


@pytest.mark.slow
def test_extract_survives_the_hostile_corpus(hostile, tmp_path):
    result = vidhash("extract", str(hostile), "--out", str(tmp_path / "x"), "--json")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    table = by_name(pd.read_parquet(tmp_path / "x" / "videos"))
    check_outcomes(table)


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "8k", readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


@pytest.mark.slow
def test_full_disk_and_read_only_targets_are_one_line_errors(media_dir, tmp_path):
    with tiny_filesystem(tmp_path / "full") as full:
        result = vidhash("index", str(media_dir / "long.mp4"), "--out", str(full / "index"))
        assert_one_line_error(result)
        assert not [p for p in full.rglob(".tmp-*")], "temp files left behind"
    with tiny_filesystem(tmp_path / "ro", readonly=True) as ro:
        result = vidhash("extract", str(media_dir / "h264.mp4"), "--out", str(ro / "x"))
        assert_one_line_error(result)


def test_cli_errors_are_one_line_and_change_nothing(media_dir, tmp_path):
    missing = vidhash("search", str(tmp_path / "nowhere"), "--keyframe", "x")
    assert_one_line_error(missing)
    assert not (tmp_path / "nowhere").exists()

    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00garbage" * 100)
    result = vidhash(
        "index", str(media_dir / "still.jpg"), "--out", str(tmp_path / "i"), "--model", str(damaged)
    )
    assert_one_line_error(result)
    assert not (tmp_path / "i").exists()

    index = tmp_path / "index"
    assert vidhash("index", str(media_dir / "still.jpg"), "--out", str(index)).returncode == 0
    before = sorted(p.name for p in index.rglob("*"))

    mismatch = vidhash(
        "index", str(media_dir / "still.png"), "--out", str(index), "--model", "default-baseline"
    )
    assert_one_line_error(mismatch)
    assert_one_line_error(
        vidhash("evaluate", str(index), "--topk", "ten", "--out", str(tmp_path / "r"))
    )
    assert_one_line_error(
        vidhash("evaluate", str(index), "--topk", "0,-5", "--out", str(tmp_path / "r"))
    )
    assert_one_line_error(vidhash("annotate", str(index), "--labels", str(tmp_path / "no.csv")))
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("concept,group,keyframe_id\nperson,local,not-a-keyframe\n,,\n")
    assert_one_line_error(vidhash("annotate", str(index), "--labels", str(bad_csv)))
    assert sorted(p.name for p in index.rglob("*")) == before
