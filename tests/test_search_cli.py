"""`vidhash search`: keyframe queries, JSON, contact sheets, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_index_helpers import build_index, content_of

from vidhash.cli import main
from vidhash.index.search.index import Index
from vidhash.index.search.sheet import make_contact_sheet


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    root = tmp_path / "idx"
    build_index(root, n_videos=3, per_video=4, images=True, alphabet=4, seed=2)
    labels = tmp_path / "labels.csv"
    labels.write_text("concept,group,video\ncar,local,clip1.mp4\n")
    main(["annotate", str(root), "--labels", str(labels)])
    return root


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keyframe_query_json(index: Path, capsys) -> None:
    capsys.readouterr()
    first = Index.open(index).keyframes.sort_values("keyframe_id").iloc[5]
    code, out, _ = run(
        ["search", str(index), "--keyframe", first.keyframe_id, "-k", "4", "--json"], capsys
    )
    assert code == 0
    result = json.loads(out)
    hits = result["hits"]
    assert len(hits) == 4
    assert hits[0]["keyframe_id"] == first.keyframe_id and hits[0]["distance"] == 0
    assert [(h["distance"], h["keyframe_id"]) for h in hits] == sorted(
        (h["distance"], h["keyframe_id"]) for h in hits
    )
    assert result["query"]["video_path"] == first.video_path
    clip1 = [h for h in hits if h["video_path"] == "videos/clip1.mp4"]
    assert all(h["concepts"] == ["car"] for h in clip1)


def flat_answer(root: Path, kid: str, k: int, radius=None, exclude_same_video=False) -> dict:
    """What ``vidhash search --keyframe --json`` printed before the search file: a brute-force
    scan of the committed Parquet rows, by (distance, keyframe id)."""
    from vidhash.index import IndexStore
    from vidhash.index.store.codes import hamming

    store = IndexStore.open(root)
    rows = store.read_table("keyframes").sort_values("keyframe_id").reset_index(drop=True)
    labels = store.read_table("annotations").groupby("keyframe_id")["concept"]
    concepts = {key: sorted(set(values)) for key, values in labels}
    codes = np.stack([np.frombuffer(c, np.uint8) for c in rows["code"]])
    me = rows.index[rows["keyframe_id"] == kid][0]
    dist = hamming(codes[me], codes)
    order = sorted(range(len(rows)), key=lambda i: (dist[i], rows["keyframe_id"][i]))
    keep = [
        i
        for i in order
        if (radius is None or dist[i] <= radius)
        and not (exclude_same_video and rows["video_id"][i] == rows["video_id"][me])
    ][:k]
    hits = [
        {
            "keyframe_id": rows["keyframe_id"][i],
            "video_id": rows["video_id"][i],
            "video_path": rows["video_path"][i],
            "pts_time": float(rows["pts_time"][i]),
            "distance": int(dist[i]),
            "score": None,  # a codes-only index: no descriptor to score by
            "image_path": str(root / rows["image_path"][i]) if rows["image_path"][i] else None,
            "concepts": concepts.get(rows["keyframe_id"][i], []),
        }
        for i in keep
    ]
    query = {
        "keyframe_id": kid,
        "video_path": rows["video_path"][me],
        "pts_time": float(rows["pts_time"][me]),
        "code": codes[me].tobytes().hex(),
    }
    return {"query": query, "hits": hits}


@pytest.mark.parametrize(
    ("k", "radius", "exclude"), [(4, None, False), (12, None, False), (20, 5, True), (3, 0, False)]
)
def test_json_output_is_the_flat_scans_byte_for_byte(index: Path, capsys, k, radius, exclude):
    ids = sorted(Index.open(index).keyframes["keyframe_id"])
    ties = 0
    for kid in ids[::3]:
        args = ["search", str(index), "--keyframe", kid, "-k", str(k), "--json"]
        args += ["--radius", str(radius)] if radius is not None else []
        args += ["--exclude-same-video"] if exclude else []
        capsys.readouterr()
        code, out, _ = run(args, capsys)
        assert code == 0
        expected = flat_answer(index, kid, k, radius, exclude)
        assert out == json.dumps(expected, indent=2) + "\n"
        ties += len({h["distance"] for h in expected["hits"]}) < len(expected["hits"])
    assert ties or k < 4  # the order of equal distances was really tested


def test_text_output_radius_and_exclusion(index: Path, capsys) -> None:
    capsys.readouterr()
    frame = Index.open(index).keyframes
    kid = frame.loc[frame["video_path"] == "videos/clip1.mp4", "keyframe_id"].iloc[0]
    code, out, _ = run(["search", str(index), "--keyframe", kid, "--radius", "0"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[1] == "d=0" and "videos/clip1.mp4" in lines[0] and "[car]" in lines[0]
    assert all("d=0 " in line for line in lines)
    code, out, _ = run(
        ["search", str(index), "--keyframe", kid, "--exclude-same-video", "--json"], capsys
    )
    assert all(h["video_path"] != "videos/clip1.mp4" for h in json.loads(out)["hits"])


def test_contact_sheet(index: Path, tmp_path: Path, capsys) -> None:
    kid = Index.open(index).keyframes["keyframe_id"].iloc[0]
    out = tmp_path / "sheet.jpg"
    code, _, _ = run(
        ["search", str(index), "--keyframe", kid, "-k", "7", "--sheet", str(out)], capsys
    )
    assert code == 0
    with Image.open(out) as sheet:
        assert sheet.format == "JPEG"
        width, height = sheet.size
    assert width > 5 * 160 and height > 2 * 160  # query + 5 columns, 2 rows


def test_sheet_marks_hits_and_misses(tmp_path: Path) -> None:
    tiles = [np.full((50, 80, 3), 128, np.uint8)] * 2
    out = make_contact_sheet(
        tiles[0],
        [
            (tiles[0], "a.mp4\n0:01.0  d=0", True),
            (tiles[1], "b.mp4", False),
            (None, "missing", None),
        ],
        tmp_path / "s.png",
        title="demo",
        columns=3,
    )
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    green = ((pixels[..., 1] > 150) & (pixels[..., 0] < 60) & (pixels[..., 2] < 100)).sum()
    red = ((pixels[..., 0] > 180) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum()
    assert green > 500 and red > 500
    with pytest.raises(ValueError):
        make_contact_sheet(None, [], tmp_path / "s.gif")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keyframe", "nope"], "not in the index"),
        (["--keyframe", "x", "-k", "0"], "error: -k/--topk must be int >= 1, got '0'"),
        (["--keyframe", "x", "-k", "ten"], "error: -k/--topk must be int"),
        (["--keyframe", "x", "--radius", "-1"], "error: --radius must be int >= 0"),
        (["--video", "v.mp4", "--at", "nan"], "error: --at must be float"),
        ([], "exactly one of"),
        (["--keyframe", "x", "--image", "y.jpg"], "exactly one of"),
        (["--video", "v.mp4"], "go together"),
        (["--image", "missing.jpg"], "not found"),
        (["--keyframe", "x", "--sheet", "out.gif"], "--sheet"),
    ],
)
def test_cli_errors_are_one_line(index: Path, capsys, args: list[str], message: str) -> None:
    capsys.readouterr()
    code, out, err = run(["search", str(index), *args], capsys)
    assert code == 2
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_missing_index(tmp_path: Path, capsys) -> None:
    code, _, err = run(["search", str(tmp_path / "nope"), "--keyframe", "x"], capsys)
    assert code == 2 and err.startswith("error: no vidhash index")


def tiny_checkpoint(path: Path, seed: int) -> Path:
    """A real (randomly initialised, small-headed) hashing network saved as a checkpoint."""
    import torch

    from vidhash.models.backbones import get_backbone
    from vidhash.models.checkpoint import save_checkpoint
    from vidhash.models.nets import BaselineHashNet

    torch.manual_seed(seed)
    backbone = get_backbone("efficientnet_lite0", weights="none")
    net = BaselineHashNet(backbone, 48, 4, width=64, pool=2)
    header = {
        "arch": "baseline",
        "name": path.stem,
        "backbone": {"name": "efficientnet_lite0", "out_channels": backbone.out_channels},
        "classes": ["a", "b", "c", "d"],
        "code_bits": 48,
        "head": {"width": 64, "pool": 2},
    }
    save_checkpoint(net, path, header)
    return path


def test_image_and_video_queries_use_the_index_model(
    media_dir: Path, tmp_path: Path, capsys
) -> None:
    """Index two stills with a real network; each finds itself at distance 0."""
    from vidhash.index import IndexStore
    from vidhash.media import read_rgb
    from vidhash.models import load_model
    from vidhash.transforms import center_crop_resize

    checkpoint = tiny_checkpoint(tmp_path / "tiny.safetensors", seed=0)
    model = load_model(str(checkpoint))
    root = tmp_path / "idx"
    meta = {
        "model_id": model.model_id,
        "model_name": str(checkpoint),
        "model_config": model.config,
        "code_bits": model.code_bits,
    }
    with IndexStore.open(root, model_meta=meta, create=True) as store:
        for name in ("still.jpg", "still.png"):
            crop = center_crop_resize(read_rgb(media_dir / name))
            code = model.encode(crop[None])[0]
            content = content_of(name)
            store.write_video(
                {"video_path": name, "content_hash": content, "status": "ok", "kind": "image"},
                [{"keyframe_id": f"{content[:16]}-000000000", "pts_time": 0.0, "code": code}],
            )
    capsys.readouterr()
    code, out, err = run(
        ["search", str(root), "--image", str(media_dir / "still.png"), "--json"], capsys
    )
    assert code == 0, err
    top = json.loads(out)["hits"][0]
    assert top["video_path"] == "still.png" and top["distance"] == 0
    code, out, err = run(
        [
            "search",
            str(root),
            "--video",
            str(media_dir / "h264.mp4"),
            "--at",
            "1.0",
            "--json",
            "--sheet",
            str(tmp_path / "s.png"),
        ],
        capsys,
    )
    assert code == 0, err
    assert len(json.loads(out)["hits"]) == 2 and (tmp_path / "s.png").is_file()
    code, _, err = run(
        ["search", str(root), "--video", str(media_dir / "h264.mp4"), "--at", "99"], capsys
    )
    assert code == 2 and "past the end" in err
    other = tiny_checkpoint(tmp_path / "other.safetensors", seed=1)
    code, _, err = run(
        ["search", str(root), "--image", str(media_dir / "still.png"), "--model", str(other)],
        capsys,
    )
    assert code == 2 and "not the index's model" in err
