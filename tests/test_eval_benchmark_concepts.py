"""benchmarks/concepts.py builds the concept benchmark from ../shared/data (skips without)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import av
import pytest

pytestmark = pytest.mark.shared

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "concepts.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_concepts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builds_media_and_labels(tmp_path, capsys):
    bench = load_script()
    out = tmp_path / "bench"
    assert bench.main(["--out", str(out), "--scenes-per-class", "2", "--min-files", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"vidhash evaluate {out}/index-proposed --compare {out}/index-baseline" in printed
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = {p.name for p in (out / "media").iterdir()}
    assert {r["video"] for r in rows} <= files  # every label names a written file
    scenes = {r["video"] for r in rows if r["video"].startswith("scenes-")}
    assert len(scenes) == 12  # 6 classes x 2
    assert all(r["group"] == "global" for r in rows if r["video"] in scenes)
    # CamVid val is one drive: one 1 fps video, each frame labelled by its time range.
    with av.open(str(out / "media" / "camvid-0016E5.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 101
    road = [r for r in rows if r["video"] == "camvid-0016E5.mp4" and r["concept"] == "road"]
    assert len(road) == 101 and road[0]["start"] == "0.0" and road[0]["end"] == "0.4"
    # The shared videos carry the reviewed labels.
    assert {"asl-book.mkv", "pool.mp4"} <= {r["video"] for r in rows}
    # COCO masks map onto the shared vocabulary, with superclasses added.
    coco = [r for r in rows if r["video"].startswith("coco-")]
    concepts = {r["concept"] for r in coco}
    assert "person" in concepts and "background" not in concepts
    if {"car", "bus"} & concepts:
        assert "vehicle" in concepts
