"""How much of what the backbone knows do a model's codes keep? (issues 12, 18)

Prints MAP@10 under the protocol of `vidhash evaluate` (vidhash.eval.concepts: DLBHC
AP@K, ties by keyframe id, overall = mean over concepts) on:

* Intel scenes test (every photo queries all the others);
* the labelled varied-photo sources (ImageNet-DET-200, clothing-20 without "Not sure",
  Imagenette), each its own database: the shipped recipe (pipelines/shipped.py) trains on
  none of them, so they measure classes the nets never saw (leave-source-out);
* the shared videos' concept labels (every labelled keyframe queries the keyframes of the
  *other* videos);

for:

* **float anchor**: the frozen ImageNet backbone's stride-32 features (EfficientNet-Lite0,
  1280-d head, global average), cosine; no training;
* **ITQ-48 anchor**: the same features -> 48-bit PCA-ITQ (Gong & Lazebnik 2011), fitted
  without labels on the varied pool (the 1,000 ImageNet sample photos, Intel train, the
  `videos-more` clips every 2 s);
* **LSH-48 anchor**: the same features -> 48 random hyperplanes (sign), no training;
* each ``--model`` (a shipped name or a checkpoint): its own 48-bit codes, and, when it has
  a descriptor, two-stage search (its codes' top-R re-ranked by its descriptors, as
  ``vidhash search`` does, R = ``--candidates``).

    python benchmarks/codes.py --model default --model default-baseline
    python benchmarks/codes.py --model /tmp/run/psp.safetensors --intel-only

Data: ../shared/data/scenes/intel-scenes.tar.xz and photos/varied-photos.tar (unpacked to
a temp folder, or --intel DIR / --photos DIR), ../shared/data/videos sampled every 2 s in
fast mode (the index's defaults) with benchmarks/labels/shared-videos.csv.
"""

from __future__ import annotations

import argparse
import contextlib
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

from vidhash.errors import DecodeError  # noqa: E402
from vidhash.eval.concepts import IndexData, evaluate_concepts  # noqa: E402
from vidhash.fsutil import content_hash  # noqa: E402
from vidhash.index.search.annotate import resolve_labels  # noqa: E402
from vidhash.index.store.codes import pack_bits  # noqa: E402
from vidhash.media import read_rgb  # noqa: E402
from vidhash.models import load_model  # noqa: E402
from vidhash.models.backbones import get_backbone  # noqa: E402
from vidhash.train.itq import fit_itq, itq_bits  # noqa: E402
from vidhash.transforms import center_crop_resize  # noqa: E402
from vidhash.video.sampling import iter_keyframes  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
VIDEO_LABELS = REPO / "benchmarks" / "labels" / "shared-videos.csv"
BITS = 48
PHOTO_SOURCES = ("imagenet-det-200", "clothing-20", "imagenette")


def intel_split(root: Path, split: str) -> tuple[list[np.ndarray], list[str]]:
    """Center crops and class names of one Intel split (sorted, so runs agree)."""
    crops, labels = [], []
    for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            crops.append(center_crop_resize(read_rgb(path)))
            labels.append(class_dir.name)
    return crops, labels


def video_keyframes(folder: Path) -> tuple[list[np.ndarray], pd.DataFrame, pd.DataFrame]:
    """Keyframes (every 2 s, fast mode) of every shared video, with their labels (read by
    ``vidhash annotate``'s own rules)."""
    crops, rows, videos = [], [], []
    for video in sorted(p for p in folder.iterdir() if p.suffix.lower() != ".md"):
        digest = content_hash(video)
        videos.append({"video_path": str(video), "content_hash": digest, "status": "ok"})
        try:
            for kf in iter_keyframes(video, video_hash=digest):
                crops.append(kf.image)
                rows.append({"keyframe_id": kf.keyframe_id, "video_id": digest,
                             "pts_time": kf.pts_time})  # fmt: skip
        except DecodeError:  # a damaged video gives the keyframes it gave
            pass
    keyframes = pd.DataFrame(rows)
    annotations, _, _ = resolve_labels(VIDEO_LABELS, keyframes, pd.DataFrame(videos))
    return crops, keyframes[["keyframe_id", "video_id"]], annotations


def anchor_features(crops: list[np.ndarray], backbone) -> np.ndarray:
    """Global-average-pooled 1280-d head features of the frozen Lite0 (float32)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), 4):
            x = torch.from_numpy(np.stack(crops[start : start + 4])).permute(0, 3, 1, 2)
            maps = backbone(x.float().div_(255.0))
            out.append(maps["head"].mean((2, 3)).numpy())
    return np.concatenate(out)


def photo_sets(root: Path) -> tuple[dict[str, tuple], list[np.ndarray]]:
    """The labelled photo sources as evaluation sets, and the ImageNet sample photos."""
    labels = pd.read_csv(root / "labels.csv")
    sets = {}
    for source in PHOTO_SOURCES:
        rows = labels[(labels["source"] == source) & (labels["label"] != "Not sure")]
        crops = [center_crop_resize(read_rgb(root / p)) for p in rows["path"]]
        ids = [f"{source}-{i:05d}" for i in range(len(rows))]
        keyframes = pd.DataFrame({"keyframe_id": ids, "video_id": ids})
        annotations = pd.DataFrame({"keyframe_id": ids, "concept": rows["label"].to_numpy(),
                                    "group": "object"})  # fmt: skip
        sets[source] = (crops, keyframes, annotations)
    pool = labels[labels["source"] == "imagenet-1k"]["path"]
    return sets, [center_crop_resize(read_rgb(root / p)) for p in pool]


def pool_frames(folder: Path, every: float = 2.0) -> list[np.ndarray]:
    """Keyframes of every video in ``folder`` (unlabelled: the ITQ anchor's pool)."""
    crops = []
    for video in sorted(p for p in folder.iterdir() if p.suffix.lower() != ".md"):
        # A damaged video gives the keyframes it gave before the damage.
        with contextlib.suppress(DecodeError):
            for kf in iter_keyframes(video, every=every, video_hash=content_hash(video)):
                crops.append(kf.image)
    return crops


def scores(keyframes: pd.DataFrame, annotations, codes=None, features=None, same_video=False,
           descriptors=None, candidates=None):  # fmt: skip
    """Overall MAP@10 per concept group, by the evaluation layer's own code."""
    order = np.argsort(keyframes["keyframe_id"].to_numpy(), kind="stable")
    kf = keyframes.iloc[order].reset_index(drop=True)
    distance = None
    if features is not None:
        unit = features[order] / np.linalg.norm(features[order], axis=1, keepdims=True)

        def distance(rows: np.ndarray) -> np.ndarray:  # cosine distance, in 1e-6 units
            return np.rint((1.0 - unit[rows] @ unit.T) * 1e6).astype(np.int64)

        codes = np.zeros((len(kf), BITS // 8), np.uint8)
    desc = None if descriptors is None else descriptors[order].astype(np.float32)
    data = IndexData(Path("-"), kf, codes[order], BITS, {}, annotations, desc)
    run = evaluate_concepts(data, [10], exclude_same_video=same_video, distance=distance,
                            rerank=desc is not None, candidates=candidates)  # fmt: skip
    return run.overall().set_index("group")["map@10"].to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="shipped name or path")
    parser.add_argument("--intel", type=Path, help="unpacked intel-scenes folder")
    parser.add_argument("--videos", type=Path, default=SHARED / "videos")
    parser.add_argument("--photos", type=Path, help="unpacked varied-photos folder")
    parser.add_argument("--candidates", type=int, default=None,
                        help="two-stage candidates [vidhash's RERANK_CANDIDATES]")  # fmt: skip
    parser.add_argument("--intel-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        intel = args.intel
        if intel is None:
            with tarfile.open(SHARED / "scenes" / "intel-scenes.tar.xz") as tar:
                tar.extractall(tmp, filter="data")
            intel = Path(tmp) / "intel-scenes"
        train, _ = intel_split(intel, "train")
        test, test_labels = intel_split(intel, "test")
        sets = {"intel test": (test, *_intel_tables(test_labels))}
        pool = list(train)
        if not args.intel_only:
            photos = args.photos
            if photos is None:
                with tarfile.open(SHARED / "photos" / "varied-photos.tar") as tar:
                    tar.extractall(tmp, filter="data")
                photos = Path(tmp) / "varied-photos"
            photo, samples = photo_sets(photos)
            sets.update(photo)
            sets["videos"] = video_keyframes(args.videos)
            pool += samples + pool_frames(args.videos.parent / "videos-more")
    backbone = get_backbone("efficientnet_lite0_ms").eval()
    fitted = fit_itq(anchor_features(pool, backbone), BITS)
    lsh = np.random.default_rng(0).standard_normal((1280, BITS))
    table: dict[str, dict[str, float]] = {}
    for name, (crops, keyframes, labels) in sets.items():
        same_video = name == "videos"
        feats = anchor_features(crops, backbone)
        result = {
            "float anchor (Lite0 head, cosine)": scores(keyframes, labels, None, feats,
                                                        same_video),
            "ITQ-48 anchor (fit: varied pool)": scores(
                keyframes, labels, pack_bits(itq_bits(feats, fitted)),
                same_video=same_video),
            "LSH-48 anchor": scores(keyframes, labels,
                                    pack_bits((feats - fitted.mean) @ lsh >= 0),
                                    same_video=same_video),
        }  # fmt: skip
        for model_name in args.model:
            net = load_model(model_name)
            parts = [net.embed(np.stack(crops[i : i + 64])) for i in range(0, len(crops), 64)]
            codes = np.concatenate([p.codes for p in parts])
            result[f"model {model_name}"] = scores(keyframes, labels, codes,
                                                   same_video=same_video)  # fmt: skip
            if net.descriptor_dims:
                desc = np.concatenate([p.descriptors for p in parts])
                result[f"model {model_name}, two-stage"] = scores(
                    keyframes, labels, codes, same_video=same_video, descriptors=desc,
                    candidates=args.candidates)  # fmt: skip
        for row, groups in result.items():
            for group, value in groups.items():
                table.setdefault(row, {})[f"{name} {group}"] = value
    frame = pd.DataFrame(table).T
    print(f"MAP@10 (vidhash.eval protocol), {time.time() - started:.0f} s")
    print(frame.to_markdown(floatfmt=".3f"))


def _intel_tables(labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"intel-{i:05d}" for i in range(len(labels))]
    keyframes = pd.DataFrame({"keyframe_id": ids, "video_id": ids})
    annotations = pd.DataFrame({"keyframe_id": ids, "concept": labels, "group": "scene"})
    return keyframes, annotations


if __name__ == "__main__":
    main()
