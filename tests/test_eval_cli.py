"""`vidhash evaluate` / `vidhash benchmark-hashing`: outputs and one-line user errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from indexes import run_main as run_cli  # noqa: E402
from test_eval_concepts import BITS, make_index  # noqa: E402


def _index(root: Path, labels=True, flip=False, model_id="m" * 64) -> Path:
    rng = np.random.default_rng(2)
    videos = {f"v{i}.mp4": rng.integers(0, 2, (3, BITS)) for i in range(4)}
    if flip:
        videos = {k: 1 - v for k, v in videos.items()}
    rows = [("v0.mp4", "*", "local:car"), ("v1.mp4", "*", "local:car")]
    rows += [("v2.mp4", "0", "global:street"), ("v3.mp4", "*", "global:street")]
    return make_index(root, videos, rows if labels else [], model_id=model_id, images=True)[0]


def test_evaluate_compare_writes_report(tmp_path, capsys):
    a = _index(tmp_path / "a")
    b = _index(tmp_path / "b", flip=True, model_id="n" * 64)
    out = tmp_path / "report"
    argv = ["evaluate", str(a), "--compare", str(b), "--topk", "5,2", "--out", str(out)]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "top-2 proposed | top-2 baseline | top-5 proposed | top-5 baseline" in stdout
    for name in ("tables.md", "table-local.csv", "table-global.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_evaluate_single_run_one_column_per_k(tmp_path, capsys):
    a = _index(tmp_path / "a")
    out = tmp_path / "report"
    code, stdout, err = run_cli(["evaluate", str(a), "--out", str(out)], capsys)
    assert code == 0, err
    header = (out / "table-local.csv").read_text().splitlines()[0]
    assert header == "concept,queries,top-10,top-50"


@pytest.mark.parametrize("topk", ["10,x", "0", "-5", ","])
def test_evaluate_bad_topk(tmp_path, capsys, topk):
    a = _index(tmp_path / "a")
    code, _, err = run_cli(["evaluate", str(a), "--topk", topk, "--out", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("error: --topk") and err.count("\n") == 1


def test_evaluate_missing_index_and_annotations(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", str(tmp_path / "nope"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "index" in err and err.count("\n") == 1
    bare = _index(tmp_path / "bare", labels=False)
    code, _, err = run_cli(["evaluate", str(bare), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "no annotations" in err and "vidhash annotate" in err
    assert not (tmp_path / "r").exists()  # nothing written on error


def test_evaluate_compare_mismatch(tmp_path, capsys):
    a = _index(tmp_path / "a")
    rng = np.random.default_rng(9)
    other = make_index(
        tmp_path / "b", {"w.mp4": rng.integers(0, 2, (2, BITS))}, [("w.mp4", "*", "local:car")]
    )[0]
    argv = ["evaluate", str(a), "--compare", str(other), "--out", str(tmp_path / "r")]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "different keyframes" in err and err.count("\n") == 1


def test_benchmark_hashing_dataset_errors(tmp_path, capsys):
    (tmp_path / "c.tar.xz").write_bytes(b"x")
    argv = ["benchmark-hashing", str(tmp_path / "c.tar.xz"), "--model", "default"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "tar -xJf" in err and err.count("\n") == 1
    argv = ["benchmark-hashing", str(tmp_path), "--model", "default", "--protocol", "bogus"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2


def test_benchmark_hashing_with_shipped_model(tmp_path, capsys):
    from vidhash.errors import VidhashError
    from vidhash.models import load_model

    try:
        load_model("default")
    except (VidhashError, ImportError, OSError) as exc:
        pytest.skip(f"shipped model not available: {exc}")
    from test_eval_protocols import make_dataset

    ds = make_dataset(tmp_path / "ds", train=3, test=2)
    out = tmp_path / "out"
    argv = ["benchmark-hashing", str(ds), "--model", "default", "--queries-per-class", "1"]
    argv += ["--protocol", "dlbhc", "--protocol", "cifar10-1", "--out", str(out)]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert '"protocol": "dlbhc"' in stdout and '"protocol": "cifar10-1"' in stdout
    assert (out / "cifar10-1-pr-curve.png").is_file()
