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


def default_workers() -> int:
    """Decode workers: leave the model its cores, but keep at least two inputs in flight."""
    return max(2, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class IngestOptions:
    """Sampling (every | count, mode, backend, size) and feeding (the rest) options."""

    every: float | None = None  # seconds between samples; DEFAULT_EVERY when count is None
    count: int | None = None  # samples per video, evenly spread (instead of every)
    mode: str = "fast"
    backend: str = "pyav"
    size: int = DEFAULT_SIZE
    workers: int | None = None  # decode threads; default_workers() when None
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
        every = DEFAULT_EVERY if self.every is None and self.count is None else self.every
        return replace(self, every=every, workers=self.workers or default_workers())

    def sampling(self) -> dict[str, Any]:
        """The options that decide an input's keyframes."""
        every = DEFAULT_EVERY if self.every is None and self.count is None else self.every
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
