"""Uniform sampling over real encoded clips: which frames, which timestamps, which way up.

The reference for every check is a plain full decode of the same file with PyAV (every
frame, its pts and pixels), so a sampler that mislabels a frame or delivers the wrong
one fails here.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import media
import numpy as np
import pytest

from vidhash.errors import DecodeError
from vidhash.video.sampling import iter_keyframes, probe, sample_frames, sample_times
from vidhash.video.stream import open_video

HASH = "ab" * 32


def full_decode(path: Path) -> list[tuple[float, bool, np.ndarray]]:
    """Every frame as (pts seconds, keyframe?, upright RGB) the slow, obvious way."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            rgb = np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90) % 4)
            frames.append((float(frame.time), bool(frame.key_frame), rgb))
    return frames


def sampled(path: Path, backend: str = "pyav", **kwargs) -> list:
    with open_video(path, backend=backend) as stream:
        return [(f.pts_time, f.frame_index, f.rgb()) for f in sample_frames(stream, **kwargs)]


def reference_duration(path: Path, reference: list) -> tuple[float, float]:
    """(start, duration): the header's, or from the decoded frames when it has none."""
    info = probe(path)
    if info.duration is not None:
        return info.start_time, info.duration
    step = reference[1][0] - reference[0][0]
    return reference[0][0], reference[-1][0] - reference[0][0] + step


def on_screen(reference: list, t: float) -> tuple[int, float]:
    """(index, pts) of the last reference frame with pts <= t."""
    index = max(i for i, (pts, _, _) in enumerate(reference) if pts <= t + 1e-4)
    return index, reference[index][0]


def test_sample_times() -> None:
    assert sample_times(0.0, 4.0, every=2) == [0.0, 2.0]
    assert sample_times(0.5, 4.1, every=2) == [0.5, 2.5, 4.5]
    assert sample_times(0.0, 1.0, every=2) == [0.0]  # short clips still give one frame
    assert sample_times(0.0, 6.0, count=3) == [0.0, 2.0, 4.0]


VIDEOS = ["h264.mp4", "mpeg4.avi", "vp9.webm", "vfr.mkv", "nodur.webm"]


@pytest.mark.parametrize("name", VIDEOS)
@pytest.mark.parametrize("kwargs", [{"every": 0.75}, {"every": 2.0}, {"count": 3}])
def test_exact_mode_delivers_the_frame_on_screen(media_dir: Path, name: str, kwargs) -> None:
    path = media_dir / name
    reference = full_decode(path)
    targets = sample_times(*reference_duration(path, reference), **kwargs)
    got = sampled(path, mode="exact", **kwargs)
    expected = [on_screen(reference, t) for t in targets]
    expected = [e for i, e in enumerate(expected) if i == 0 or e != expected[i - 1]]
    assert [round(p, 3) for p, _, _ in got] == [round(p, 3) for _, p in expected]
    for (pts, index, rgb), (ref_index, _) in zip(got, expected, strict=True):
        assert np.array_equal(rgb, reference[ref_index][2]), f"wrong pixels at {pts}"
        assert index in (None, ref_index)


@pytest.mark.parametrize("name", VIDEOS)
@pytest.mark.parametrize("every", [0.75, 1.0, 2.0])
def test_fast_mode_is_near_and_true(media_dir: Path, name: str, every: float) -> None:
    path = media_dir / name
    frames = full_decode(path)
    reference = {round(p, 4): (key, rgb) for p, key, rgb in frames}
    targets = sample_times(*reference_duration(path, frames), every=every)
    got = sampled(path, mode="fast", every=every)
    assert len(got) == len(targets)  # same count as exact mode on a clean file
    for t, (pts, _, rgb) in zip(targets, got, strict=True):
        assert abs(pts - t) <= every / 2 + 1e-6
        assert np.array_equal(rgb, reference[round(pts, 4)][1]), "pts does not match the pixels"


def test_fast_mode_uses_keyframes_when_they_are_close(media_dir: Path) -> None:
    # GOP 10 at 10 fps: keyframes every second, so every 1 s hits keyframes only.
    path = media_dir / "h264.mp4"
    keys = [p for p, key, _ in full_decode(path) if key]
    got = [pts for pts, _, _ in sampled(path, mode="fast", every=1.0)]
    assert got == pytest.approx(keys)


BACKENDS = ["pyav", pytest.param("ffmpeg", marks=pytest.mark.ffmpeg)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_header_without_duration_is_probed_as_unknown(media_dir: Path, backend: str) -> None:
    assert probe(media_dir / "nodur.webm", backend=backend).duration is None
    assert probe(media_dir / "vp9.webm", backend=backend).duration == pytest.approx(4.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotated_video_comes_out_upright(media_dir: Path, backend: str) -> None:
    path = media_dir / "rotated.mp4"
    info = probe(path, backend=backend)
    assert (info.width, info.height, info.rotation) == (96, 64, 90)
    frames = sampled(path, backend=backend, every=1.0, mode="exact")
    assert frames
    for _, _, rgb in frames:
        assert rgb.shape == (64, 96, 3)
        assert rgb[:6, :6].mean() > 240  # the marker block is drawn top-left when upright
        assert rgb[-6:, -6:].mean() < 240
    keyframes = list(iter_keyframes(path, video_hash=HASH, size=32))
    assert {(k.width, k.height, k.rotation) for k in keyframes} == {(96, 64, 90)}


def test_keyframes_are_center_cropped_and_resized(media_dir: Path) -> None:
    path = media_dir / "h264.mp4"
    reference = {round(p, 4): rgb for p, _, rgb in full_decode(path)}
    keyframes = list(iter_keyframes(path, video_hash=HASH, every=2.0, size=32))
    assert [k.keyframe_id for k in keyframes] == [
        f"{HASH[:16]}-000000000",
        f"{HASH[:16]}-000002000",
    ]
    for k in keyframes:
        assert k.image.shape == (32, 32, 3) and k.image.dtype == np.uint8
        assert (k.width, k.height) == (96, 64)
        frame = reference[round(k.pts_time, 4)]
        expected = cv2.resize(frame[:, 16:80], (32, 32), interpolation=cv2.INTER_AREA)
        assert np.array_equal(k.image, expected)


def test_still_image_is_one_keyframe(media_dir: Path) -> None:
    (k,) = iter_keyframes(media_dir / "still.png", video_hash=HASH, size=40)
    assert (k.pts_time, k.width, k.height, k.image.shape) == (0.0, 80, 120, (40, 40, 3))


@pytest.mark.parametrize("name", ["h264-cut.mp4", "mpeg4-cut.avi"])
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_truncated_file_yields_what_it_can_then_raises(media_dir: Path, name: str, mode) -> None:
    got = []
    with pytest.raises(DecodeError) as excinfo:
        for keyframe in iter_keyframes(media_dir / name, video_hash=HASH, every=1.0, mode=mode):
            got.append(keyframe.pts_time)
    assert got and got[0] == 0.0
    assert max(got) < 4.0  # 60% of a 6 s clip
    assert "\n" not in str(excinfo.value) and str(excinfo.value)


@pytest.mark.parametrize("name", ["zero.mp4", "random.mp4", "text.avi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_not_a_video_raises_decode_error(media_dir: Path, name: str, backend: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        list(iter_keyframes(media_dir / name, video_hash=HASH, backend=backend))
    assert str(excinfo.value) and "\n" not in str(excinfo.value)


@pytest.mark.ffmpeg
@pytest.mark.parametrize("name", ["h264.mp4", "vfr.mkv", "rotated.mp4", "mpeg4.avi", "nodur.webm"])
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_backends_agree(media_dir: Path, name: str, mode: str) -> None:
    pyav = sampled(media_dir / name, "pyav", every=0.75, mode=mode)
    cli = sampled(media_dir / name, "ffmpeg", every=0.75, mode=mode)
    assert [p for p, _, _ in cli] == pytest.approx([p for p, _, _ in pyav], abs=1e-3)
    for (_, _, a), (_, _, b) in zip(pyav, cli, strict=True):
        assert np.abs(a.astype(int) - b).mean() < 2.0


def test_long_clip_memory_is_bounded_by_streaming(media_dir: Path) -> None:
    # A generator: asking for the first keyframe must not decode the whole file first.
    frames = iter_keyframes(media_dir / "long.mp4", video_hash=HASH, every=2.0, mode="exact")
    first = next(frames)
    assert first.pts_time == 0.0
    frames.close()


@pytest.mark.parametrize("name", ["h264.mp4", "rotated.mp4"])
def test_opencv_backend_agrees_in_exact_mode(media_dir: Path, name: str) -> None:
    pyav = sampled(media_dir / name, "pyav", every=0.75, mode="exact")
    opencv = sampled(media_dir / name, "opencv", every=0.75, mode="exact")
    assert [p for p, _, _ in opencv] == pytest.approx([p for p, _, _ in pyav], abs=1e-3)
    for (_, _, a), (_, _, b) in zip(pyav, opencv, strict=True):
        assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 3.0
    assert probe(media_dir / name, backend="opencv").rotation == probe(media_dir / name).rotation


# -- spans: one video sampled as several decode runs (vidhash.video.spans) ------------


@pytest.mark.parametrize("mode", ["fast", "exact"])
@pytest.mark.parametrize("every", [1.0, 1.5])
def test_spans_joined_give_the_serial_frames(media_dir, mode, every):
    from vidhash.video.spans import SpanEnd, cut, timeline

    path = media_dir / "long.mp4"  # 12 s, 5 fps, a keyframe every 2 s
    serial = sampled(path, every=every, mode=mode)
    with open_video(path) as stream:
        line = timeline(stream, every=every, mode=mode, keyframes=True)
    spans = cut(line, parts=3, min_samples=2)
    assert len(spans) == 3 and spans[0].first == 0 and spans[-1].stop is None
    joined, prior = [], None
    for span in spans:
        end = SpanEnd()
        with open_video(path) as stream:  # each span on its own stream, as on a worker
            frames = sample_frames(stream, every=every, mode=mode, span=span, end=end)
            joined += [(f.pts_time, f.frame_index, f.rgb()) for f in frames]
        assert not end.unresolved and end.problem is None
        assert end.floor_ms is None or prior is None or prior <= end.floor_ms  # seam holds
        prior = end.last_ms if end.last_ms is not None else prior
    assert [(t, i) for t, i, _ in joined] == [(t, i) for t, i, _ in serial]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(joined, serial, strict=True))


def test_a_blind_span_stops_where_its_choice_depends_on_the_prior(tmp_path):
    from vidhash.video.spans import SampleSpan, SpanEnd

    # Keyframes every 3 s, samples every 2 s: the sample at 4 s may take the keyframe at
    # 3 s only if the sample at 2 s did not (fast mode: later than the last frame).
    path = media.make_video(tmp_path / "gop3.mp4", seconds=30, fps=5, gop=15)
    with open_video(path) as stream:
        serial = [f.pts_time for f in sample_frames(stream, every=2.0)]
    assert serial[:3] == [0.0, 3.0, 4.0]
    end = SpanEnd()
    with open_video(path) as stream:
        blind = SampleSpan(first=2, prior_known=False)
        assert list(sample_frames(stream, every=2.0, span=blind, end=end)) == []
    assert end.unresolved and end.floor_ms == 3000
    with open_video(path) as stream:
        told = SampleSpan(first=2, prior_ms=3000)
        again = [f.pts_time for f in sample_frames(stream, every=2.0, span=told, end=SpanEnd())]
    assert again == serial[2:]


def test_cut_needs_a_keyframe_map_and_spares_the_first_decode_run():
    from vidhash.video.spans import Timeline, cut

    times = tuple(float(t) for t in range(20))
    assert cut(Timeline(times, 1.0, True, 20.0, None), 4, 2) == []  # no keyframe map
    # Only one keyframe, at the start: the serial run decodes on from it throughout
    # (frame numbers counted from the first frame), so there is nowhere to cut.
    assert cut(Timeline(times, 1.0, False, 20.0, (0.0,)), 4, 2) == []
    keys = tuple(float(t) for t in range(0, 20, 2))
    spans = cut(Timeline(times, 1.0, True, 20.0, keys), 4, 6)  # 20 // 6: 3 parts
    # Even shares would cut at samples 7 and 13; the cuts move to the nearest samples on a
    # keyframe (6, 12), where the serial run seeks too.
    assert [(s.first, s.stop) for s in spans] == [(0, 6), (6, 12), (12, None)]
    assert [s.prior_known for s in spans] == [True, False, False]
