"""``vidhash extract``: inputs -> keyframe JPEGs + a Parquet manifest, resumable.

Output layout (documented in docs/EXTRACT.md)::

    OUT/keyframes/<hash16>/<ms:09d>.jpg   one JPEG per keyframe (hash16 = video content hash)
    OUT/manifest/<key>.parquet            keyframe rows of one input (key = hash of its path)
    OUT/videos/<key>.parquet              one status row per input: ok/partial/failed/skipped

``pd.read_parquet(OUT / "manifest")`` and ``pd.read_parquet(OUT / "videos")`` read the
tables whole. Every file is written atomically, and an input's ``videos`` row is written
*last*: it is the commit record. A rerun skips an input whose row names the same path,
the same content (size + mtime, else re-hashed) and the same options; an interrupted run
simply redoes the inputs that have no row yet. One input never stops the batch: its
failure is a row with a one-line reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vidhash.errors import DecodeError, UsageError
from vidhash.fsutil import TMP_PREFIX, atomic_path, content_hash, remove_stale_temps
from vidhash.media import read_rgb
from vidhash.transforms import DEFAULT_SIZE
from vidhash.video.discover import classify, discover
from vidhash.video.sampling import MODES, iter_keyframes, keyframes_from_stream
from vidhash.video.stream import backend_names, open_video, require_backend

MANIFEST_SCHEMA = pa.schema(
    [
        ("keyframe_id", pa.string()),
        ("video_path", pa.string()),
        ("video_hash", pa.string()),
        ("pts_time", pa.float64()),
        ("frame_index", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("rotation", pa.int32()),
        ("image_path", pa.string()),
    ]
)

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_path", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("video_hash", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("n_keyframes", pa.int32()),
        ("duration", pa.float64()),
        ("frame_rate", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("rotation", pa.int32()),
        ("codec", pa.string()),
        ("container", pa.string()),
        ("options", pa.string()),
        ("seconds", pa.float64()),
        ("extracted_at", pa.string()),
    ]
)

STATUSES = ("ok", "partial", "failed", "skipped")


@dataclass(frozen=True)
class ExtractOptions:
    """What decides the output; a change of any of these re-extracts a video."""

    every: float | None = 2.0
    count: int | None = None
    mode: str = "fast"
    backend: str = "pyav"
    size: int = DEFAULT_SIZE
    jpeg_quality: int = 90

    def validate(self) -> ExtractOptions:
        if self.count is not None and self.count < 1:
            raise UsageError(f"--count must be at least 1, got {self.count}")
        if self.count is None and (self.every is None or self.every <= 0):
            raise UsageError(f"--every must be a positive number of seconds, got {self.every}")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.backend not in backend_names():
            raise UsageError(f"--backend must be one of {', '.join(backend_names())}")
        require_backend(self.backend)
        if not 8 <= self.size <= 4096:
            raise UsageError(f"--size must be between 8 and 4096, got {self.size}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UsageError(f"--jpeg-quality must be between 1 and 100, got {self.jpeg_quality}")
        return self

    def fingerprint(self) -> str:
        """Canonical JSON of the options (``every`` dropped when ``count`` rules)."""
        data = asdict(self)
        if self.count is not None:
            data["every"] = None
        return json.dumps(data, sort_keys=True)


@dataclass
class ExtractSummary:
    """What a run did; ``to_dict()`` is the ``--json`` output."""

    out: str
    inputs: int = 0
    processed: int = 0
    unchanged: int = 0
    removed: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    skipped: int = 0
    keyframes: int = 0
    seconds: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every input is ok (or a skipped non-video); 1 when some failed or were partial."""
        return 1 if (self.failed or self.partial) else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def input_key(path: str | os.PathLike) -> str:
    """The file name of an input's parts: a hash of its absolute path (stable across runs)."""
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:20]


def keyframe_image_path(video_hash: str, pts_time: float) -> str:
    """Relative path of a keyframe JPEG inside the output folder."""
    return f"keyframes/{video_hash[:16]}/{round(pts_time * 1000):09d}.jpg"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row(path: str, kind: str, status: str, error: str | None, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(VIDEOS_SCHEMA.names)
    row.update(video_path=path, kind=kind, status=status, error=error, n_keyframes=0)
    row.update(values)
    row["extracted_at"] = _now()
    return row


def _write_table(rows: list[dict[str, Any]], schema: pa.Schema, final: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)


def _load_rows(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every committed videos row, by path, in one read (temp files are ignored)."""
    rows: dict[str, dict[str, Any]] = {}
    for part in sorted((out_dir / "videos").glob("*.parquet")):
        try:
            for row in pq.read_table(part).to_pylist():
                rows[row["video_path"]] = row
        except (OSError, pa.ArrowException):
            continue  # unreadable part: its input is simply redone
    return rows


def _remove_parts(out_dir: Path, path: str) -> None:
    """Forget an input: commit row first (so a crash leaves it 'not done'), then its rows."""
    key = input_key(path)
    (out_dir / "videos" / f"{key}.parquet").unlink(missing_ok=True)
    (out_dir / "manifest" / f"{key}.parquet").unlink(missing_ok=True)


def _encode_jpeg(rgb, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def process_input(
    path: str, kind: str, out: str, options: ExtractOptions, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Extract one input and write its parts; returns its videos row (never raises for bad data).

    ``previous`` is the row of an earlier run with the same options: when the content hash
    still matches, nothing is decoded (the row is refreshed with the new mtime).
    """
    started = time.perf_counter()
    out_dir = Path(out)
    key = input_key(path)
    try:
        stat = os.stat(path)
        video_hash = content_hash(path)
    except OSError as exc:
        row = _row(
            path,
            kind,
            "failed",
            f"cannot read: {exc.strerror or exc}",
            options=options.fingerprint(),
        )
        _commit(out_dir, key, [], row)
        return row
    if previous is not None and previous.get("video_hash") == video_hash:
        row = {**previous, "mtime_ns": stat.st_mtime_ns, "size_bytes": stat.st_size}
        _write_table([row], VIDEOS_SCHEMA, out_dir / "videos" / f"{key}.parquet")
        return {**row, "unchanged": True}

    facts: dict[str, Any] = {
        "video_hash": video_hash,
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "options": options.fingerprint(),
    }
    error: str | None = None
    keyframes: list[dict[str, Any]] = []
    written: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            if kind == "image":
                rgb = read_rgb(path)
                facts.update(width=rgb.shape[1], height=rgb.shape[0], rotation=0)
                source = iter_keyframes(path, video_hash=video_hash, size=options.size)
            else:
                stream = stack.enter_context(open_video(path, backend=options.backend))
                info = stream.info
                facts.update(
                    duration=info.duration,
                    frame_rate=info.frame_rate,
                    width=info.width,
                    height=info.height,
                    rotation=info.rotation,
                    codec=info.codec,
                    container=info.container,
                )
                source = keyframes_from_stream(
                    stream,
                    video_hash=video_hash,
                    every=options.every,
                    count=options.count,
                    mode=options.mode,
                    size=options.size,
                )
            for kf in source:
                image_path = keyframe_image_path(video_hash, kf.pts_time)
                _write_file(out_dir / image_path, _encode_jpeg(kf.image, options.jpeg_quality))
                written.append(out_dir / image_path)
                keyframes.append(
                    {
                        "keyframe_id": kf.keyframe_id,
                        "video_path": path,
                        "video_hash": video_hash,
                        "pts_time": kf.pts_time,
                        "frame_index": kf.frame_index,
                        "width": kf.width,
                        "height": kf.height,
                        "rotation": kf.rotation,
                        "image_path": image_path,
                    }
                )
    except DecodeError as exc:
        error = str(exc) or "decode error"
    except Exception as exc:  # a decoder library's own failure on a damaged file
        text = str(exc).splitlines()[0] if str(exc) else ""
        error = f"{type(exc).__name__}: {text}".rstrip(": ")

    status = "ok" if error is None else ("partial" if keyframes else "failed")
    row = _row(path, kind, status, error, **facts, n_keyframes=len(keyframes))
    row["seconds"] = round(time.perf_counter() - started, 4)
    _flush_to_disk(out_dir, written)
    _commit(out_dir, key, keyframes, row)
    return row


def _write_file(final: Path, data: bytes) -> None:
    """Crash-atomic write (temp + rename) *without* a per-file fsync.

    Why not ``atomic_write_bytes``: one fsync per JPEG cost 2-10 ms each on the build
    machines, more than decoding the keyframe. Durability comes from one flush of the
    file system before the input's commit row (``_flush_to_disk``).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{TMP_PREFIX}{os.getpid()}-{final.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _flush_to_disk(out_dir: Path, paths: list[Path]) -> None:
    """Make the JPEGs durable before the commit row: one syncfs (Linux), else fsync each."""
    if not paths:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _commit(out_dir: Path, key: str, keyframes: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Manifest part first, videos row last: a row on disk means the input is complete."""
    _write_table(keyframes, MANIFEST_SCHEMA, out_dir / "manifest" / f"{key}.parquet")
    _write_table([row], VIDEOS_SCHEMA, out_dir / "videos" / f"{key}.parquet")


def extract(
    inputs: str | os.PathLike | list[str | os.PathLike],
    out: str | os.PathLike,
    options: ExtractOptions | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> ExtractSummary:
    """Extract keyframes of every input into ``out`` (see module docstring for the layout)."""
    options = (options or ExtractOptions()).validate()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    started = time.perf_counter()
    out_dir = Path(out)
    found = discover(inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("manifest", "videos", "keyframes"):
        (out_dir / sub).mkdir(exist_ok=True)
        remove_stale_temps(out_dir / sub)
    summary = ExtractSummary(out=str(out_dir))
    summary.inputs = len(found.videos) + len(found.images) + len(found.skipped)
    fingerprint = options.fingerprint()
    existing = _load_rows(out_dir)
    for path in list(existing):
        if not os.path.lexists(path):  # the file is gone: so are its rows (JPEGs stay)
            _remove_parts(out_dir, path)
            del existing[path]
            summary.removed += 1

    def record(row: dict[str, Any]) -> None:
        status = row["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        summary.keyframes += int(row.get("n_keyframes") or 0)
        if status != "ok":
            summary.problems.append(
                {"path": row["video_path"], "status": status, "error": row["error"] or ""}
            )
        if on_row is not None:
            on_row(row)

    for path, reason in found.skipped:
        status = "failed" if classify(path) != "other" else "skipped"
        row = _row(os.path.abspath(path), classify(path), status, reason, options=fingerprint)
        old = existing.get(row["video_path"])
        if old is None or (old["status"], old["error"]) != (status, reason):
            _commit(out_dir, input_key(path), [], row)
        record(row)

    todo: list[tuple[str, str, dict[str, Any] | None]] = []
    for kind, paths in (("video", found.videos), ("image", found.images)):
        for p in paths:
            path = os.path.abspath(p)
            previous = existing.get(path)
            if previous is not None and previous.get("options") != fingerprint:
                previous = None  # other options: a fresh extraction
            if previous is not None and _same_stat(path, previous):
                summary.unchanged += 1
                record(previous)
                continue
            todo.append((path, kind, previous))

    bar = _progress(len(todo), progress)
    try:
        if workers == 1 or len(todo) <= 1:
            for path, kind, previous in todo:
                _finish(process_input(path, kind, str(out_dir), options, previous), summary, record)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(process_input, path, kind, str(out_dir), options, previous)
                    for path, kind, previous in todo
                ]
                for future in as_completed(futures):
                    _finish(future.result(), summary, record)
                    bar.update(1)
    finally:
        bar.close()
    summary.problems.sort(key=lambda item: item["path"])
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _finish(
    row: dict[str, Any], summary: ExtractSummary, record: Callable[[dict[str, Any]], None]
) -> None:
    if row.pop("unchanged", False):
        summary.unchanged += 1
    else:
        summary.processed += 1
    record(row)


def _same_stat(path: str, previous: dict[str, Any]) -> bool:
    """Size and mtime unchanged since the recorded run (then the content hash is trusted)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return previous.get("size_bytes") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="extract", disable=not enabled or total == 0)
