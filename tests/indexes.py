"""Test helpers shared by the index, Ray, robustness and evaluation tests: read an index's
tables as a user would, and run the `vidhash` command in a child process or in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd


def read_keyframes(index_dir: Path) -> pd.DataFrame:
    """The keyframes table in keyframe-id order, so two runs compare row by row."""
    return pd.read_parquet(index_dir / "keyframes").sort_values("keyframe_id", ignore_index=True)


def by_name(table: pd.DataFrame) -> pd.DataFrame:
    """A table with a video_path column, indexed by the file's name."""
    return table.set_index(table["video_path"].map(lambda p: Path(p).name))


def read_videos(index_dir: Path) -> pd.DataFrame:
    """The videos (status) table, indexed by file name."""
    return by_name(pd.read_parquet(index_dir / "videos"))


def vidhash_argv(*args: str | Path) -> list[str]:
    """argv that runs the `vidhash` command with this interpreter (for Popen and kill tests)."""
    return [sys.executable, "-m", "vidhash.cli", *map(str, args)]


def run_vidhash(*args: str | Path) -> subprocess.CompletedProcess:
    """`vidhash ARGS` in a child process, as a user runs it; output captured as text."""
    return subprocess.run(vidhash_argv(*args), capture_output=True, text=True, timeout=600)


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`vidhash ARGV` in-process through the CLI's entry point: (exit code, stdout, stderr)."""
    from vidhash.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err
