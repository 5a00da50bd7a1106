"""Input discovery: folders, lists, odd entries; never fatal, always sorted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vidhash.errors import InputError
from vidhash.video.discover import discover


@pytest.fixture()
def tree(tmp_path: Path, media_dir: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(media_dir / "h264.mp4", root / "b.mp4")
    shutil.copy(media_dir / "mpeg4.avi", root / "sub" / "A.AVI")
    shutil.copy(media_dir / "vp9.webm", root / "sub" / "deeper" / "c.WebM")
    shutil.copy(media_dir / "still.jpg", root / "photo.JPEG")
    (root / "notes.md").write_text("hello")
    (root / "folder.mp4").mkdir()  # a directory that only looks like a video
    shutil.copy(media_dir / "h264.mp4", root / "folder.mp4" / "inner.mp4")
    (root / "gone.mp4").symlink_to(root / "does-not-exist.mp4")
    (root / "sub" / "loop").symlink_to(root)  # a folder symlink back up: a loop
    (root / ".hidden.mp4").write_bytes(b"")
    return root


def test_folder_is_walked_recursively_sorted_and_odd_entries_are_skipped(tree: Path) -> None:
    found = discover(tree)
    assert found.videos == sorted(
        [tree / "b.mp4", tree / "folder.mp4" / "inner.mp4", tree / "sub" / "A.AVI",
         tree / "sub" / "deeper" / "c.WebM"]
    )  # fmt: skip
    assert found.images == [tree / "photo.JPEG"]
    reasons = {p.name: r for p, r in found.skipped}
    assert "not a video" in reasons["notes.md"]
    assert reasons["gone.mp4"] == "dangling symlink"
    assert "loop" in reasons["loop"]
    assert ".hidden.mp4" not in reasons
    assert discover(tree) == found  # deterministic


def test_list_file_resolves_relative_paths_and_records_missing(tree: Path) -> None:
    listing = tree / "inputs.txt"
    listing.write_text("# my videos\nb.mp4\n\nsub/deeper\nmissing.mkv\n" + str(tree / "notes.md"))
    found = discover(listing)
    assert found.videos == [tree / "b.mp4", tree / "sub" / "deeper" / "c.WebM"]
    reasons = {p.name: r for p, r in found.skipped}
    assert reasons["missing.mkv"] == "listed path does not exist"
    assert "notes.md" in reasons


def test_single_file_and_missing_input(tree: Path) -> None:
    assert discover(tree / "b.mp4").videos == [tree / "b.mp4"]
    with pytest.raises(InputError):
        discover(tree / "nothing-here")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_is_skipped(tree: Path) -> None:
    target = tree / "b.mp4"
    target.chmod(0)
    try:
        reasons = {p.name: r for p, r in discover(tree).skipped}
    finally:
        target.chmod(0o644)
    assert "permission" in reasons["b.mp4"]
