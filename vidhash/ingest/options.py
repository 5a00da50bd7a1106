"""What an ingest run is asked to do: sampling options (they decide the keyframes) and
feeding options (they decide only how fast and what else is kept).

Contract: an input's keyframes depend on :data:`SAMPLING_FIELDS` alone. Their JSON
(:meth:`IngestOptions.fingerprint`) is stored in each input's ``sampling`` column; a rerun
with other sampling options processes the input again, a rerun with other feeding options
(workers, batch and queue sizes, JPEG quality, whether images are kept) does not.
:meth:`IngestOptions.validate` is the one validation for the CLI and the Python API; its
messages name the options, never command-line flags.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any

from vidhash.errors import UsageError
from vidhash.media import JPEG_QUALITY
from vidhash.transforms import DEFAULT_SIZE
from vidhash.video.sampling import MODES
from vidhash.video.stream import backend_names, require_backend

DEFAULT_EVERY = 2.0
SAMPLING_FIELDS = ("every", "count", "mode", "backend", "size")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Decode threads: one per usable core (at least two), so every core decodes, whether
    the work is many files or one long one cut into parts (:mod:`vidhash.ingest.split`).

    Inference (``vidhash index``) runs in the runner's main thread beside them: its
    threads sleep rather than spin when idle, and decode threads that outrun it block on
    the bounded event queue, so more decode threads cost little where the model is the
    slower stage and keep its batches full where decoding is.
    """
    return max(2, usable_cores())


@dataclass(frozen=True)
class IngestOptions:
    """Sampling (every | count, mode, backend, size) and feeding (the rest) options."""

    every: float | None = None  # seconds between samples; DEFAULT_EVERY when count is None
    count: int | None = None  # samples per video, evenly spread (instead of every)
    mode: str = "fast"
    backend: str = "pyav"
    size: int = DEFAULT_SIZE
    workers: int | None = None  # decode threads (and parts per long file); default_workers()
    batch_size: int = 32
    queue_size: int = 128
    jpeg_quality: int = JPEG_QUALITY
    save_images: bool = True

    def validate(self) -> IngestOptions:
        """Check every option (and that the backend can run here); the filled-in options."""
        if self.every is not None and self.count is not None:
            raise UsageError("give every or count, not both")
        if self.count is not None and self.count < 1:
            raise UsageError(f"count must be at least 1, got {self.count}")
        if self.every is not None and not self.every > 0:
            raise UsageError(f"every must be a positive number of seconds, got {self.every}")
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.backend not in backend_names():
            raise UsageError(f"backend must be one of {', '.join(backend_names())}")
        require_backend(self.backend)
        limits = {"size": (8, 4096), "jpeg_quality": (1, 100), "batch_size": (1, None)}
        limits.update(workers=(1, None), queue_size=(1, None))
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if value is not None and (value < low or (high is not None and value > high)):
                within = f"between {low} and {high}" if high else f"at least {low}"
                raise UsageError(f"{name} must be {within}, got {value}")
        return replace(self, every=self.step, workers=self.workers or default_workers())

    @property
    def step(self) -> float | None:
        """Seconds between samples: ``every``, or DEFAULT_EVERY when neither every nor count
        is given (the one place the default is applied)."""
        return DEFAULT_EVERY if self.every is None and self.count is None else self.every

    def sampling(self) -> dict[str, Any]:
        """The options that decide an input's keyframes."""
        every = self.step
        return {
            "every": None if every is None else float(every),
            "count": self.count,
            "mode": self.mode,
            "backend": self.backend,
            "size": self.size,
        }

    def fingerprint(self) -> str:
        """Canonical JSON of :meth:`sampling`, as stored in the ``sampling`` column."""
        return json.dumps(self.sampling(), sort_keys=True)

    def same_sampling(self, stored: str | None) -> bool:
        """Whether keyframes made with the ``stored`` fingerprint are this run's keyframes.

        Compares the sampling fields only, so a fingerprint written by an older vidhash
        (which also held jpeg_quality) still matches.
        """
        try:
            old = json.loads(stored) if stored else None
        except ValueError:
            return False
        if not isinstance(old, dict):
            return False
        if old.get("count") is not None:
            old["every"] = None
        return {k: old.get(k) for k in SAMPLING_FIELDS} == self.sampling()
