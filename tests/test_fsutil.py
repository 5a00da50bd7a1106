"""The shared atomic-write and id helpers."""

from __future__ import annotations

import os
import stat

import pytest

from vidhash.fsutil import TMP_PREFIX, atomic_path, atomic_write_bytes, keyframe_id


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert not list(target.parent.glob(f"{TMP_PREFIX}*"))


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(f"{TMP_PREFIX}*"))


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    target = tmp_path / "report.html"
    atomic_write_bytes(target, b"<html/>")
    mode = stat.S_IMODE(os.stat(target).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask


def test_keyframe_ids_are_stable_at_millisecond_resolution():
    digest = "ab" * 32
    assert keyframe_id(digest, 2.0) == "abababababababab-000002000"
    assert keyframe_id(digest, 1.0004) == keyframe_id(digest, 1.0)
    assert keyframe_id(digest, 1.0006) != keyframe_id(digest, 1.0)
