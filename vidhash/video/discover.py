"""Find the inputs of a run: a video file, a folder (recursive), or a text file of paths.

Never fatal: anything that is not a readable video or still image becomes a ``Skipped``
entry with a one-line reason (a README in the folder, a dangling symlink, a symlink loop,
a file we may not read). Extensions match in any case. The order is sorted, so two runs
over the same tree see the same sequence (and the same progress bar).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from vidhash.errors import InputError

# Containers FFmpeg demuxes that people keep video in (lower case, with the dot).
_VIDEO = ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .m2v .ts .mts .m2ts .wmv .asf .flv .3gp .3g2"
_VIDEO += " .ogv .ogg .vob .mxf .divx .dv .rm .rmvb .y4m .gif"
VIDEO_EXTENSIONS: frozenset[str] = frozenset(_VIDEO.split())
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
# A text file with one path per line (blank lines and '#' comments ignored).
LIST_EXTENSIONS: frozenset[str] = frozenset({".txt", ".lst", ".list"})


class Skipped(NamedTuple):
    """An input that will not be processed, and why (unpacks as ``path, reason``)."""

    path: Path
    reason: str


@dataclass
class Discovered:
    """Videos, still images and skipped entries, each sorted by path."""

    videos: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def sort(self) -> Discovered:
        self.videos = sorted(set(self.videos))
        self.images = sorted(set(self.images))
        self.skipped = sorted(set(self.skipped))
        return self


def classify(path: Path) -> str:
    """'video', 'image' or 'other' by extension (any case)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return "other"


def discover(inputs: str | os.PathLike | list[str | os.PathLike]) -> Discovered:
    """Resolve one input (or several) to videos, images and skipped entries.

    A missing top-level input is the user's error (``InputError``); everything found
    inside a folder or list is never fatal.
    """
    found = Discovered()
    items = inputs if isinstance(inputs, list) else [inputs]
    for item in items:
        path = Path(item)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"input not found: {path}")
        if path.is_dir():
            _walk(path, found)
        elif classify(path) == "other" and path.suffix.lower() in LIST_EXTENSIONS:
            _read_list(path, found)
        else:
            _add_file(path, found)
    return found.sort()


def _add_file(path: Path, found: Discovered) -> None:
    kind = classify(path)
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            found.skipped.append(Skipped(path, "symlink loop"))
            return
        except OSError:
            pass
        found.skipped.append(Skipped(path, "dangling symlink"))
        return
    if kind == "other":
        found.skipped.append(
            Skipped(path, f"not a video or image file ({path.suffix or 'no extension'})")
        )
        return
    if not path.is_file():
        found.skipped.append(Skipped(path, "not a regular file"))
        return
    if not os.access(path, os.R_OK):
        found.skipped.append(Skipped(path, "permission denied (not readable)"))
        return
    (found.videos if kind == "video" else found.images).append(path)


def _walk(root: Path, found: Discovered) -> None:
    """Recurse with os.walk; follows directory symlinks but never the same folder twice."""
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        found.skipped.append(Skipped(Path(exc.filename), f"cannot list folder: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        here = Path(dirpath)
        try:
            st = here.stat()
        except OSError as exc:
            found.skipped.append(Skipped(here, f"cannot read folder: {exc.strerror}"))
            dirnames.clear()
            continue
        if (st.st_dev, st.st_ino) in seen:
            found.skipped.append(Skipped(here, "symlink loop (folder already visited)"))
            dirnames.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if name.startswith("."):
                continue  # hidden files and our own .tmp- files
            _add_file(here / name, found)


def _read_list(list_file: Path, found: Discovered) -> None:
    """One path per line; relative paths are relative to the list file's folder."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read input list {list_file}: {exc}") from exc
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if path.is_dir():
            _walk(path, found)
        elif not path.exists() and not path.is_symlink():
            found.skipped.append(Skipped(path, "listed path does not exist"))
        else:
            _add_file(path, found)
