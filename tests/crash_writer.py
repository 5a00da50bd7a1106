"""A writer for the search file's crash tests: a fixed sequence of store operations (commits,
a redo with new codes, a drop, a duplicate that displaces an owner, a failed input, enough
commits to merge segments), run in-process by the tests or as a child process that kills
itself with SIGKILL at the N-th file rename (before or after it), i.e. at any point where
the index's files change.

    python crash_writer.py ROOT KILL_AT before|after     # prints "op I" before each operation

``KILL_AT`` 0 runs to the end and prints "renames N", the number of renames a whole run does.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from test_index_helpers import MODEL, content_of, keyframes_for  # noqa: E402

from vidhash.index import IndexStore  # noqa: E402


def operations() -> list[tuple[str, str, int]]:
    """(kind, path, seed) in order: kind is commit, redo, drop, failed."""
    ops = [("commit", f"videos/clip{v}.mp4", v) for v in range(6)]
    ops += [("redo", "videos/clip2.mp4", 100), ("drop", "videos/clip3.mp4", 0)]
    ops += [("commit", "videos/a-copy-of-clip1.mp4", 1)]  # same bytes, smaller path: owner
    ops += [("failed", "videos/broken.mp4", 0)]
    ops += [("commit", f"videos/more{v}.mp4", 10 + v) for v in range(5)]
    return ops


def run(root: Path, after_op: Callable[[int], None] | None = None) -> None:
    with IndexStore.open(root, model_meta=MODEL, create=True) as store:
        for i, (kind, path, seed) in enumerate(operations()):
            print(f"op {i}", flush=True)
            rng = np.random.default_rng(seed)
            content = content_of(f"videos/clip{seed}.mp4" if seed < 10 else path)
            if kind == "redo":
                content = content_of(f"{path}#changed")
            if kind == "drop":
                store.drop_videos([path])
            elif kind == "failed":
                store.commit({"video_path": path, "status": "failed", "error": "no frames"})
            else:
                codes = rng.integers(0, 4, (7 + seed % 5, 6), dtype=np.uint8)
                row = {"video_path": path, "content_hash": content, "status": "ok"}
                store.commit(row, keyframes_for(content, codes, step=0.5))
            if after_op is not None:
                after_op(i)
    print("finished", flush=True)


def _kill_at(n: int, when: str) -> list[int]:
    """Make the n-th ``os.replace`` of this process its last act (before or after it)."""
    real = os.replace
    count = [0]

    def replace(src, dst, *args, **kwargs):
        count[0] += 1
        if count[0] == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *args, **kwargs)
        if count[0] == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    return count


if __name__ == "__main__":
    renames = _kill_at(int(sys.argv[2]), sys.argv[3])
    run(Path(sys.argv[1]))
    print(f"renames {renames[0]}", flush=True)
