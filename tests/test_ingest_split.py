"""A long input cut by time across workers gives the serial run's output, byte for byte.

Each test runs the same inputs twice: serially (one thread, never cut) and cut into parts
over several threads (small ``min_span`` so the small test clips are cut), then compares
the keyframes and videos tables row for row and every JPEG byte for byte. Every input is a
real file: generated clips, truncated copies (damage), and the shared development videos
(a partly broken AVI, an MPEG whose seeks overshoot) where they are present.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import media
import pandas as pd
import pytest

from vidhash.ingest import IngestOptions, LocalDistributor, build_index, extract
from vidhash.ingest.frames import Done
from vidhash.ingest.split import join_parts
from vidhash.video.spans import SpanEnd, Timeline


class Recording(LocalDistributor):
    """The local engine, noting how many parts each input was cut into and every redo."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.parts: dict[str, int] = {}
        self.redos: list[tuple[str, int]] = []

    def events(self, items, options, pixels):
        for event in super().events(items, options, pixels):
            if isinstance(event, Done):
                name = Path(event.path).name
                self.parts[name] = max(self.parts.get(name, 1), event.parts)
            yield event

    def redo(self, item, part, options, pixels):
        self.redos.append((Path(item.path).name, part.span.first))
        return super().redo(item, part, options, pixels)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips long enough to cut: 1 s GOPs (H.264, VP9), a VFR one, 3 s GOPs (keyframes on
    the midpoints of 2 s sampling steps: fast mode's choice there depends on the prior)."""
    root = tmp_path_factory.mktemp("long")
    media.make_video(root / "plain" / "h264.mp4", seconds=30, fps=10, gop=10)
    media.make_video(root / "plain" / "vp9.webm", codec="vp9", seconds=20, fps=10, gop=10)
    media.make_video(root / "plain" / "vfr.mkv", seconds=30, fps=10, vfr=True, gop=5)
    media.make_video(root / "gop3" / "gop3.mp4", seconds=60, fps=5, gop=15)
    return root


def run_both(inputs: Path, tmp_path: Path, options: IngestOptions, **split) -> Recording:
    """Extract serially and cut; assert the two outputs are identical; the recorder."""
    serial = extract(
        inputs,
        tmp_path / "serial",
        replace(options, workers=1),
        distributor=LocalDistributor(split=False),
        progress=False,
    )
    recorder = Recording(min_span=split.pop("min_span", 3))
    cut = extract(
        inputs,
        tmp_path / "cut",
        replace(options, workers=split.pop("workers", 3)),
        distributor=recorder,
        progress=False,
    )
    strip = {"seconds": 0, "keyframes_per_second": 0, "out": ""}
    assert cut.to_dict() | strip == serial.to_dict() | strip
    assert_same_folders(tmp_path / "serial", tmp_path / "cut")
    return recorder


def assert_same_folders(a: Path, b: Path) -> None:
    """Same tables row for row (in committed order) and the same JPEG files, byte for byte."""
    for table in ("keyframes", "videos"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / table), pd.read_parquet(b / table))
    images_a = sorted(p.relative_to(a) for p in (a / "images").rglob("*") if p.is_file())
    images_b = sorted(p.relative_to(b) for p in (b / "images").rglob("*") if p.is_file())
    assert images_a == images_b
    for rel in images_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("mode", ["fast", "exact"])
@pytest.mark.parametrize("every", [1.0, 1.5])
def test_cut_inputs_give_the_serial_output(clips, tmp_path, mode, every):
    options = IngestOptions(mode=mode, every=every, size=32)
    recorder = run_both(clips / "plain", tmp_path, options)
    vp9_parts = 6 if every == 1.0 else 4  # 14 samples: 4 parts of at least 3
    assert recorder.parts == {"h264.mp4": 6, "vp9.webm": vp9_parts, "vfr.mkv": 6}
    assert recorder.redos == []


def test_count_sampling_cuts_too(clips, tmp_path):
    recorder = run_both(clips / "plain" / "h264.mp4", tmp_path, IngestOptions(count=17, size=32))
    assert recorder.parts == {"h264.mp4": 5}


def test_cuts_avoid_seams_whose_choice_depends_on_the_prior(clips, tmp_path):
    recorder = run_both(clips / "gop3", tmp_path, IngestOptions(every=2.0, size=32))
    assert recorder.parts == {"gop3.mp4": 6} and recorder.redos == []


def test_a_seam_that_cannot_be_decided_blind_is_decoded_again(clips, tmp_path, monkeypatch):
    # Even shares only: the cut at sample 8 (t = 16 s) is blind to whether the keyframe
    # at 15 s was delivered for the sample at 14 s; that part stops and is redone.
    monkeypatch.setattr(Timeline, "clean_seam", lambda self, first: False)
    recorder = run_both(clips / "gop3", tmp_path, IngestOptions(every=2.0, size=32), workers=2)
    assert recorder.parts == {"gop3.mp4": 4}
    assert recorder.redos == [("gop3.mp4", 8)]


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_damage_keeps_the_serial_rule(clips, tmp_path, mode):
    """Truncated copies fail part way: the cut run keeps the frames before the damage and
    nothing after it (the later parts' rows and images are dropped), as serially."""
    damaged = tmp_path / "in"
    damaged.mkdir()
    whole = media.make_video(tmp_path / "whole.mp4", seconds=30, fps=10, gop=10, faststart=True)
    media.truncate(whole, 0.55, damaged / "late.mp4")  # the header first: frames until the cut
    media.truncate(whole, 0.2, damaged / "early.mp4")
    out = tmp_path / mode
    recorder = run_both(damaged, out, IngestOptions(mode=mode, every=1.0, size=16))
    assert recorder.parts["late.mp4"] > 2  # the damage falls in a middle part
    videos = pd.read_parquet(out / "cut" / "videos").set_index("video_path")
    videos.index = videos.index.map(lambda p: Path(p).name)
    assert set(videos["status"]) <= {"partial", "failed"}
    assert 0 < videos.loc["late.mp4", "n_keyframes"] < 30


@pytest.mark.shared
@pytest.mark.slow
def test_the_shared_videos_cut_give_the_serial_output(shared_data, tmp_path):
    """25 real videos, among them a partly broken AVI and an MPEG whose seeks overshoot
    (its seam is caught at the join and decoded again)."""
    recorder = run_both(shared_data / "videos", tmp_path, IngestOptions(size=32), min_span=2)
    assert max(recorder.parts.values()) > 1


def test_join_keeps_the_serial_runs_parts():
    def done(i: int, *, error=None, last=None, floor=None, unresolved=False) -> Done:
        end = SpanEnd(first=10 * i, last_ms=last, floor_ms=floor, unresolved=unresolved)
        return Done("v.mp4", 1, error, {}, i, 3, end)

    fine = {0: done(0, last=9000), 1: done(1, last=19000, floor=9000), 2: done(2, floor=19000)}
    assert join_parts(fine) == [0, 1, 2]
    stopped = {**fine, 1: done(1, error="decoding stopped: x", floor=9000)}
    assert join_parts(stopped) == [0, 1]
    overshot = {**fine, 0: done(0, last=9500)}
    redo = join_parts(overshot)
    assert (redo.index, redo.span.first, redo.span.prior_ms, redo.span.prior_known) == (
        3,
        10,
        9500,
        True,
    )
    assert join_parts({**overshot, 3: done(3)}) == [0, 3]
    blind = {**fine, 2: done(2, unresolved=True)}
    assert join_parts(blind).span.first == 20


def test_index_of_cut_inputs_has_the_serial_codes(clips, tmp_path, default_model):
    video = clips / "plain" / "h264.mp4"
    options = IngestOptions(every=1.0, batch_size=7)
    serial = build_index(
        video,
        tmp_path / "serial",
        default_model,
        replace(options, workers=1),
        distributor=LocalDistributor(split=False),
        progress=False,
    )
    recorder = Recording(min_span=3)
    cut = build_index(
        video,
        tmp_path / "cut",
        default_model,
        replace(options, workers=2),
        distributor=recorder,
        progress=False,
    )
    assert recorder.parts == {"h264.mp4": 4}
    assert cut.keyframes == serial.keyframes == 30
    assert_same_folders(tmp_path / "serial", tmp_path / "cut")


@pytest.mark.slow
def test_ray_cuts_long_inputs_like_the_local_engine(clips, tmp_path):
    ray = pytest.importorskip("ray")
    from vidhash.ingest.ray import RayDistributor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        options = IngestOptions(every=1.0, size=32)
        local = extract(clips / "plain", tmp_path / "local", options, progress=False)
        on_ray = RayDistributor(progress=False, split_bytes=0, min_span=3)
        parts: dict[str, int] = {}

        def events(items, options, pixels):
            for event in RayDistributor.events(on_ray, items, options, pixels):
                if isinstance(event, Done):
                    parts[Path(event.path).name] = max(
                        parts.get(Path(event.path).name, 1), event.parts
                    )
                yield event

        on_ray.events = events
        distributed = extract(
            clips / "plain", tmp_path / "ray", options, distributor=on_ray, progress=False
        )
    finally:
        ray.shutdown()
    assert parts == {"h264.mp4": 4, "vp9.webm": 4, "vfr.mkv": 4}  # 2 CPUs, 2 parts each
    assert distributed.keyframes == local.keyframes > 0
    assert_same_folders(tmp_path / "local", tmp_path / "ray")
