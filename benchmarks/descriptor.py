"""Which stored descriptor orders the Hamming candidates best, per byte? (issue 18)

Each keyframe keeps, beside its code, a small float descriptor that a two-stage search
re-ranks the code's Hamming candidates by. This prints MAP@10 (the `vidhash evaluate`
concept protocol: DLBHC AP@K, ties by id) against bytes per keyframe for:

* **features**: the frozen Lite0's globally averaged ``head`` map (1280-d: the float
  anchor), its ``s32`` + ``head`` maps side by side (each L2-normalised), and the shipped
  ``default`` net's own hidden layer (FC2, 1024-d: what the hash head learned);
* **projection**: PCA to D dimensions (optionally whitened), fitted on an unlabelled pool
  (the varied photos, Intel train, the `videos-more` clips every 2 s) *leaving out the
  source being measured*;
* **storage**: float16 or int8 (per-dimension scale fitted on the pool);
* **two-stage**: the shipped codes' Hamming top-R (R = 50 ... 500) re-ranked by the
  descriptor, against the codes alone and the float anchor over the whole database.

Sets (each its own database; every labelled item queries all others): Intel scenes test,
the labelled varied-photo sources (ImageNet-DET-200, clothing-20, Imagenette) and the
shared videos' concepts (benchmarks/labels/shared-videos.csv; other videos only).

    python benchmarks/descriptor.py                 # features cached under --cache
    python benchmarks/descriptor.py --only-cache    # compute the feature cache and stop

Data: ../shared/data (photos/varied-photos.tar, scenes/intel-scenes.tar.xz, videos,
videos-more), unpacked to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from codes import _intel_tables, intel_split, pool_frames, video_keyframes  # noqa: E402

from vidhash.eval.concepts import IndexData, evaluate_concepts  # noqa: E402
from vidhash.media import read_rgb  # noqa: E402
from vidhash.models import load_model  # noqa: E402
from vidhash.train.itq import fit_pca  # noqa: E402
from vidhash.transforms import center_crop_resize  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
PHOTO_SOURCES = ("imagenet-det-200", "clothing-20", "imagenette")
BITS = 48


# ---------------------------------------------------------------------- features


def net_features(net, crops: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One pass of the shipped net: pooled backbone levels, its FC2 layer, its codes."""
    out: dict[str, list[np.ndarray]] = {"head": [], "s32": [], "fc": [], "codes": []}
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(crops), 4):
            x = torch.from_numpy(np.stack(crops[start : start + 4])).permute(0, 3, 1, 2)
            maps = net.backbone(x.float().div_(255.0))
            out["head"].append(maps["head"].mean((2, 3)).numpy())
            out["s32"].append(maps["s32"].mean((2, 3)).numpy())
            hidden = net.head.fc(net.features_from_map(maps))
            out["fc"].append(hidden.numpy())
            r = torch.sigmoid(net.head.hash(hidden))
            out["codes"].append(np.packbits((r >= 0.5).numpy(), axis=1))
    return {k: np.concatenate(v) for k, v in out.items()}


def build_cache(path: Path) -> None:
    net = load_model("default")
    torch.set_num_threads(2)
    sets: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(SHARED / "scenes" / "intel-scenes.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        with tarfile.open(SHARED / "photos" / "varied-photos.tar") as tar:
            tar.extractall(tmp, filter="data")
        intel = Path(tmp) / "intel-scenes"
        train, _ = intel_split(intel, "train")
        test, test_labels = intel_split(intel, "test")
        photos = pd.read_csv(Path(tmp) / "varied-photos" / "labels.csv")
        photo_crops = [center_crop_resize(read_rgb(Path(tmp) / "varied-photos" / p))
                       for p in photos["path"]]  # fmt: skip
    video_crops, video_kf, video_ann = video_keyframes(SHARED / "videos")
    more = pool_frames(SHARED / "videos-more")
    arrays: dict[str, np.ndarray] = {}
    for name, crops in (("intel_train", train), ("intel_test", test), ("photos", photo_crops),
                        ("videos", video_crops), ("videos_more", more)):  # fmt: skip
        started = time.time()
        for key, value in net_features(net, crops).items():
            arrays[f"{name}/{key}"] = value
        print(f"{name}: {len(crops)} images, {time.time() - started:.0f} s", flush=True)
    sets = {
        "intel_test_labels": np.array(test_labels),
        "photo_source": photos["source"].to_numpy().astype(str),
        "photo_label": photos["label"].to_numpy().astype(str),
        "video_keyframe_id": video_kf["keyframe_id"].to_numpy().astype(str),
        "video_video_id": video_kf["video_id"].to_numpy().astype(str),
        "video_ann": video_ann.to_numpy().astype(str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, **sets)


# ---------------------------------------------------------------------- scoring


def evaluation_sets(c) -> dict[str, tuple]:
    """name -> (rows of features by key, keyframes frame, annotations, pool exclusions)."""
    out = {}
    kf, ann = _intel_tables(list(c["intel_test_labels"]))
    out["intel test"] = ("intel_test", None, kf, ann, "intel_train")
    for source in PHOTO_SOURCES:
        rows = np.flatnonzero((c["photo_source"] == source) & (c["photo_label"] != "Not sure"))
        ids = [f"{source}-{i:05d}" for i in range(len(rows))]
        kf = pd.DataFrame({"keyframe_id": ids, "video_id": ids})
        ann = pd.DataFrame({"keyframe_id": ids, "concept": c["photo_label"][rows],
                            "group": "object"})  # fmt: skip
        out[source] = ("photos", rows, kf, ann, source)
    kf = pd.DataFrame({"keyframe_id": c["video_keyframe_id"], "video_id": c["video_video_id"]})
    ann = pd.DataFrame(c["video_ann"], columns=["keyframe_id", "concept", "group"])
    out["videos"] = ("videos", None, kf, ann, None)
    return out


def pool_features(c, key: str, leave_out: str | None) -> np.ndarray:
    parts = [c[f"videos_more/{key}"]]
    if leave_out != "intel_train":
        parts.append(c[f"intel_train/{key}"])
    keep = c["photo_source"] != (leave_out or "")
    parts.append(c[f"photos/{key}"][keep])
    return np.concatenate(parts)


def features(c, name: str, rows, key: str) -> np.ndarray:
    if key == "sqrt-head":  # power normalisation (signed square root)
        x = features(c, name, rows, "head")
        return np.sign(x) * np.sqrt(np.abs(x))
    if key == "ms":
        return np.concatenate([_unit(features(c, name, rows, "s32")),
                               _unit(features(c, name, rows, "head"))], 1)  # fmt: skip
    value = c[f"{name}/{key}"]
    return value if rows is None else value[rows]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def describe(pool: np.ndarray, x: np.ndarray, dims: int | None, whiten: bool, dtype: str):
    """Descriptors of ``x`` as they would be stored (float32 view for scoring)."""
    if dims is None:
        return _unit(x)
    pca = fit_pca(pool, dims, whiten=whiten)
    d = _unit((x - pca.mean) @ pca.projection)
    if dtype == "float16":
        return d.astype(np.float16).astype(np.float32)
    scale = np.percentile(np.abs(_unit((pool - pca.mean) @ pca.projection)), 99.9, axis=0)
    return np.clip(np.rint(d / scale * 127), -127, 127) * scale / 127


def score(kf, ann, *, codes=None, desc=None, rerank: int | None = None) -> dict[str, float]:
    """Overall MAP@10 per concept group under the evaluation layer's protocol."""
    order = np.argsort(kf["keyframe_id"].to_numpy(), kind="stable")
    kf = kf.iloc[order].reset_index(drop=True)
    same_video = kf["video_id"].to_numpy()
    codes = codes[order] if codes is not None else np.zeros((len(kf), BITS // 8), np.uint8)
    desc = desc[order] if desc is not None else None
    bits = np.unpackbits(codes, axis=1).astype(np.int16)

    def distance(rows: np.ndarray) -> np.ndarray:
        cosine = np.rint((1.0 - desc[rows] @ desc.T) * 1e6).astype(np.int64)
        if rerank is None:
            return cosine
        hamming = (bits[rows][:, None, :] != bits[None, :, :]).sum(-1).astype(np.int64)
        hamming[same_video[rows][:, None] == same_video[None, :]] = 10_000  # excluded first
        # Top-R by (distance, id) = by position (rows are id-sorted): rank within the row.
        rank = np.argsort(np.argsort(hamming * len(kf) + np.arange(len(kf)), axis=1), axis=1)
        return np.where(rank < rerank, cosine, 10**9 + hamming)

    data = IndexData(Path("-"), kf, codes, BITS, {}, ann)
    run = evaluate_concepts(data, [10], exclude_same_video=True,
                            distance=None if desc is None else distance)  # fmt: skip
    return run.overall().set_index("group")["map@10"].to_dict()


VARIANTS = [  # (feature key, dims, whiten, dtype)
    ("head", None, False, "float32"),
    *[("head", d, False, "float16") for d in (64, 128, 256)],
    *[("head", d, True, "float16") for d in (128, 256)],
    ("head", 256, False, "int8"),
    ("head", 512, False, "int8"),
    *[("ms", d, False, "float16") for d in (128, 256)],
    *[("fc", d, False, "float16") for d in (128, 256)],
    ("sqrt-head", 256, False, "float16"),
]


# Mixtures: each part PCA-projected and unit-normalised, weighted, joined, unit again.
MIXES = {
    "head PCA192 + 0.5 x fc PCA64": [("head", 192, 1.0), ("fc", 64, 0.5)],
    "head PCA192 + 0.7 x fc PCA64": [("head", 192, 1.0), ("fc", 64, 0.7)],
    "head PCA224 + 0.5 x s32 PCA32": [("head", 224, 1.0), ("s32", 32, 0.5)],
}


def mixture(c, name, rows, leave_out, parts) -> np.ndarray:
    joined = []
    for key, dims, weight in parts:
        pca = fit_pca(_pool_for(c, key, leave_out), dims)
        joined.append(weight * _unit((features(c, name, rows, key) - pca.mean) @ pca.projection))
    return _unit(np.concatenate(joined, 1)).astype(np.float16).astype(np.float32)


def nbytes(dims: int | None, dtype: str, key: str) -> int:
    full = {"head": 1280, "sqrt-head": 1280, "ms": 1600, "fc": 1024}[key]
    return (dims or full) * {"float32": 4, "float16": 2, "int8": 1}[dtype]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cache = Path("~/.cache/vidhash/bench/descriptor.npz").expanduser()
    parser.add_argument("--cache", type=Path, default=default_cache)
    parser.add_argument("--only-cache", action="store_true")
    parser.add_argument("--rerank", default="50,100,200,500")
    args = parser.parse_args()
    if not args.cache.is_file():
        build_cache(args.cache)
    if args.only_cache:
        return
    c = dict(np.load(args.cache))
    table: dict[str, dict[str, float]] = {}
    for set_name, (name, rows, kf, ann, leave_out) in evaluation_sets(c).items():
        codes = features(c, name, rows, "codes")

        def put(row: str, result: dict[str, float], set_name=set_name) -> None:
            for group, value in result.items():
                label = set_name if len(result) == 1 else f"{set_name} {group}"
                table.setdefault(row, {})[label] = value

        put("codes only (default, 6 B)", score(kf, ann, codes=codes))
        for key, dims, whiten, dtype in VARIANTS:
            x = features(c, name, rows, key)
            pool = _pool_for(c, key, leave_out)
            desc = describe(pool, x, dims, whiten, dtype)
            tag = f"{key} {'PCA' + str(dims) if dims else 'full'}{' white' if whiten else ''}"
            put(f"{tag} {dtype} ({nbytes(dims, dtype, key)} B)", score(kf, ann, desc=desc))
        for label, parts in MIXES.items():
            desc = mixture(c, name, rows, leave_out, parts)
            put(f"{label} float16 (512 B)", score(kf, ann, desc=desc))
        best = describe(_pool_for(c, "head", leave_out), features(c, name, rows, "head"),
                        256, False, "float16")  # fmt: skip
        for r in map(int, args.rerank.split(",")):
            put(
                f"two-stage: codes top-{r}, head PCA256 float16",
                score(kf, ann, codes=codes, desc=best, rerank=r),
            )
        print(f"scored {set_name}", flush=True)
    frame = pd.DataFrame(table).T
    print("MAP@10 (vidhash.eval concept protocol); PCA fitted on the pool without the set's "
          "own source")  # fmt: skip
    print(frame.to_markdown(floatfmt=".3f"))


def _pool_for(c, key: str, leave_out: str | None) -> np.ndarray:
    if key == "sqrt-head":
        x = pool_features(c, "head", leave_out)
        return np.sign(x) * np.sqrt(np.abs(x))
    if key == "ms":
        return np.concatenate([_unit(pool_features(c, "s32", leave_out)),
                               _unit(pool_features(c, "head", leave_out))], 1)  # fmt: skip
    return pool_features(c, key, leave_out)


if __name__ == "__main__":
    main()
