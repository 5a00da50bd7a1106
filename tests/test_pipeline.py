"""`vidhash index` on the local engine end to end: real clips, the shipped model, the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import media
import numpy as np
import pandas as pd
import pytest
from indexes import read_keyframes as keyframes
from indexes import read_videos as videos
from indexes import vidhash_argv

from vidhash.index.search.index import Index
from vidhash.ingest import IngestOptions, build_index
from vidhash.models import load_model

GOOD = ["h264.mp4", "mpeg4.avi", "vp9.webm", "rotated.mp4", "vfr.mkv", "long.mp4"]
BAD = ["zero.mp4", "random.mp4", "text.avi"]
STILLS = ["still.jpg", "still.png"]


@pytest.fixture()
def model(default_model):
    return default_model


@pytest.fixture()
def corpus(media_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the media folder, so tests may change and delete files."""
    return media.copy_media(media_dir, [*GOOD, *BAD, *STILLS, "h264-cut.mp4"], tmp_path / "v")


def test_index_records_every_input_and_codes_every_keyframe(corpus, tmp_path, model):
    out = tmp_path / "index"
    summary = build_index(corpus, out, model, progress=False)

    table = videos(out)
    for name in [*GOOD, *STILLS]:
        assert table.loc[name, "status"] == "ok", table.loc[name].to_dict()
    for name in BAD:
        assert table.loc[name, "status"] == "failed"
        assert table.loc[name, "error"]
    assert table.loc["h264-cut.mp4", "status"] in ("partial", "ok")

    kf = keyframes(out)
    assert kf["keyframe_id"].is_unique
    assert (kf["code_bits"] == model.code_bits).all()
    assert {len(c) for c in kf["code"]} == {(model.code_bits + 7) // 8}
    # 4 s clips sampled every 2 s give 2 keyframes; stills give one each.
    per_video = kf.groupby(kf["video_path"].map(lambda p: Path(p).name)).size()
    assert per_video["h264.mp4"] == 2 and per_video["still.jpg"] == 1
    assert summary.keyframes == len(kf)
    assert summary.failed == len(BAD)

    # Stored codes are the model's codes for the stored keyframe images (JPEG aside, the
    # codes of a re-read image agree on nearly all bits).
    row = kf.iloc[0]
    assert (out / row["image_path"]).is_file()


def test_a_keyframe_finds_itself_first(corpus, tmp_path, model):
    out = tmp_path / "index"
    build_index(corpus, out, model, progress=False)
    index = Index.open(out)
    kf = keyframes(out)
    kf_id = kf["keyframe_id"].iloc[3]
    hits = index.search(index.code_of(kf_id), k=5)
    assert hits[0].distance == 0
    assert kf_id in [h.keyframe_id for h in hits if h.distance == 0]


def test_rerun_adds_nothing_and_changed_or_deleted_inputs_are_handled(corpus, tmp_path, model):
    out = tmp_path / "index"
    build_index(corpus, out, model, progress=False)
    before = keyframes(out)

    again = build_index(corpus, out, model, progress=False)
    assert again.processed == 0 and again.keyframes == 0
    pd.testing.assert_frame_equal(keyframes(out), before)

    # Change one video's content, delete another.
    media.make_video(
        corpus / "h264.mp4",
        codec="h264",
        seconds=6,
        fps=10,
        gop=10,
        frames_from=("rocket", "coffee"),
    )
    (corpus / "vp9.webm").unlink()
    third = build_index(corpus, out, model, progress=False)
    assert third.processed == 1 and third.removed == 1
    after = keyframes(out)
    names = after["video_path"].map(lambda p: Path(p).name)
    assert "vp9.webm" not in set(names)
    assert (names == "h264.mp4").sum() == 3
    assert after["keyframe_id"].is_unique


def test_a_different_model_is_refused_unless_reindex(corpus, tmp_path, model):
    from vidhash.errors import ModelMismatchError

    out = tmp_path / "index"
    build_index(corpus / "still.jpg", out, model, progress=False)
    other = load_model("default-baseline")
    with pytest.raises(ModelMismatchError):
        build_index(corpus / "still.jpg", out, other, progress=False)
    build_index(corpus / "still.jpg", out, other, progress=False, reindex=True)
    assert set(keyframes(out)["model_id"]) == {other.model_id}


def test_overlapped_engine_matches_a_single_worker_run(corpus, tmp_path, model):
    one = build_index(
        corpus,
        tmp_path / "a",
        model,
        progress=False,
        options=IngestOptions(workers=1, batch_size=1, save_images=False),
    )
    many = build_index(
        corpus,
        tmp_path / "b",
        model,
        progress=False,
        options=IngestOptions(workers=3, batch_size=7, queue_size=4),
    )
    assert one.keyframes == many.keyframes
    a, b = keyframes(tmp_path / "a"), keyframes(tmp_path / "b")
    assert list(a["keyframe_id"]) == list(b["keyframe_id"])
    assert [bytes(c) for c in a["code"]] == [bytes(c) for c in b["code"]]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_equals_an_uninterrupted_run(media_dir, tmp_path):
    """SIGKILL `vidhash index` ten times at random moments; the final index is exact."""
    corpus = tmp_path / "videos"
    corpus.mkdir()
    for i in range(3):
        for name in ["h264.mp4", "mpeg4.avi", "long.mp4", "still.png", "random.mp4"]:
            shutil.copy2(media_dir / name, corpus / f"{i}-{name}")

    def run(out: Path, kill_after: float | None) -> int | None:
        cmd = vidhash_argv(
            "index", corpus, "--out", out, "--workers", "2", "--batch-size", "4", "--json"
        )
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is None:
            return proc.wait(timeout=300)
        time.sleep(kill_after)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return None

    reference = tmp_path / "reference"
    assert run(reference, None) == 1  # exit 1: random.mp4 copies are recorded failures

    interrupted = tmp_path / "interrupted"
    rng = np.random.default_rng(7)
    for delay in rng.uniform(1.5, 8.0, size=10):
        run(interrupted, float(delay))
        visible = [p for p in interrupted.rglob("*.parquet") if not p.name.startswith(".tmp-")]
        for part in visible:  # every visible part is complete and readable
            pd.read_parquet(part)
    # 0 or 1: the failed copies may already be recorded by an interrupted run (then they
    # count as unchanged and the final run itself meets no failure).
    assert run(interrupted, None) in (0, 1)

    ref, got = keyframes(reference), keyframes(interrupted)
    assert got["keyframe_id"].is_unique
    assert list(got["keyframe_id"]) == list(ref["keyframe_id"])
    assert [bytes(c) for c in got["code"]] == [bytes(c) for c in ref["code"]]
    assert sorted(videos(interrupted)["status"]) == sorted(videos(reference)["status"])


def test_cli_index_json_summary(corpus, tmp_path):
    from click.testing import CliRunner

    from vidhash.cli import cli

    result = CliRunner().invoke(
        cli, ["index", str(corpus / "still.jpg"), "--out", str(tmp_path / "i"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["processed"] == 1 and summary["keyframes"] == 1


def test_other_sampling_options_reindex_what_they_change(corpus, tmp_path, model):
    out = tmp_path / "index"
    build_index(corpus / "h264.mp4", out, model, progress=False)
    assert len(keyframes(out)) == 2  # 4 s every 2 s
    same = build_index(
        corpus / "h264.mp4",
        out,
        model,
        progress=False,
        options=IngestOptions(workers=1, batch_size=3),
    )  # feeding only
    assert same.unchanged == 1 and same.processed == 0
    denser = build_index(
        corpus / "h264.mp4", out, model, progress=False, options=IngestOptions(every=1.0)
    )
    assert denser.processed == 1
    kf = keyframes(out)
    assert list(kf["pts_time"]) == [0.0, 1.0, 2.0, 3.0]
    assert kf["keyframe_id"].is_unique
