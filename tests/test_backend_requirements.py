"""A decoder backend whose program is missing is a usage error before any input is touched.

The ffmpeg backend runs the ``ffmpeg``/``ffprobe`` programs. Without them, `extract`,
`index` and `search --video` must say so in one line (the program and the fix), exit 2,
and write nothing: not record every input as ``failed`` with a misleading reason. The
tests hide the programs by running the CLI with an empty PATH, so they run (and mean the
same) whether or not this machine has FFmpeg.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from indexes import vidhash_argv


def _without_ffmpeg(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(empty)}
    return subprocess.run(vidhash_argv(*args), capture_output=True, text=True, timeout=300, env=env)


def _assert_one_line_fix(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "ffprobe" in lines[0] and "ffmpeg" in lines[0]
    assert "apt-get install ffmpeg" in lines[0] and "--backend pyav" in lines[0]


@pytest.mark.parametrize("command", ["extract", "index"])
def test_missing_program_is_a_usage_error_and_writes_nothing(
    media_dir: Path, tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    result = _without_ffmpeg(tmp_path, command, media_dir / "h264.mp4", "--out", out,
                             "--backend", "ffmpeg")  # fmt: skip
    _assert_one_line_fix(result)
    assert not out.exists()


def test_search_video_query_checks_the_backend_first(media_dir: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    made = subprocess.run(
        vidhash_argv("index", media_dir / "still.jpg", "--out", index, "--json"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    before = sorted(p.relative_to(index) for p in index.rglob("*"))
    result = _without_ffmpeg(tmp_path, "search", index, "--video", media_dir / "h264.mp4",
                             "--at", "1", "--backend", "ffmpeg")  # fmt: skip
    _assert_one_line_fix(result)
    assert sorted(p.relative_to(index) for p in index.rglob("*")) == before


def test_python_api_checks_the_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vidhash.errors import UsageError
    from vidhash.ingest import IngestOptions
    from vidhash.video.stream import require_backend

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="apt-get install ffmpeg"):
        IngestOptions(backend="ffmpeg").validate()
    assert require_backend("pyav").name == "pyav"  # needs no program
