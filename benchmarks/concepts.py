"""Build the development concept benchmark from ../shared/data (issue 5, deliverable b).

Writes OUT/media/ (stills and videos, file names unique so labels can name them) and
OUT/labels.csv in the `vidhash annotate` format (concept, group, video, start, end), then
prints the exact commands that index it with the proposed and the baseline model and
compare them in the paper's Tables II/III layout.

Concepts:
* global: the 6 scene classes of scenes/intel-scenes (test split), one label per still;
* local: CamVid and COCO128 (VOC classes) pixel masks; an image has a concept when its
  class covers >= 5% of the pixels of the 224 center crop (the region the model sees).
  Mask names are mapped onto one vocabulary (CamVid pedestrian -> person, tree ->
  vegetation, ...) and the superclasses vehicle and animal are added, so stills and the
  shared videos share concepts;
* the shared videos with the per-video labels of benchmarks/labels/shared-videos.csv.

Run:  python benchmarks/concepts.py --out /tmp/concept-bench [--split val|all]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vidhash.fsutil import atomic_path  # noqa: E402
from vidhash.transforms import center_crop_box  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
VIDEO_LABELS = REPO / "benchmarks" / "labels" / "shared-videos.csv"
MIN_COVERAGE = 0.05

# Mask class -> concept name in the shared vocabulary (None = not a concept).
CAMVID_CONCEPTS = {
    "sky": "sky",
    "building": "building",
    "pole": "pole",
    "road": "road",
    "pavement": "pavement",
    "tree": "vegetation",
    "sign": "sign",
    "fence": "fence",
    "car": "car",
    "pedestrian": "person",
    "bicyclist": "bicyclist",
}
COCO_CONCEPTS = {
    "background": None,
    "pottedplant": "vegetation",
    "diningtable": "table",
    "tvmonitor": "screen",
}
SUPERCLASSES = {
    "vehicle": {"car", "bus", "motorbike", "bicycle", "train", "aeroplane", "boat", "bicyclist"},
    "animal": {"bird", "cat", "cow", "dog", "horse", "sheep"},
}


def mask_concepts(mask_path: Path, classes: list[str], mapping: dict[str, str | None]) -> set[str]:
    """Concepts covering >= 5% of the center crop of a class-index mask (255 = ignore)."""
    mask = np.asarray(Image.open(mask_path))
    left, top, side, _ = center_crop_box(mask.shape[1], mask.shape[0])
    crop = mask[top : top + side, left : left + side]
    counts = np.bincount(crop.ravel(), minlength=256)[: len(classes)]
    found = set()
    for idx in np.flatnonzero(counts >= MIN_COVERAGE * crop.size):
        name = mapping.get(classes[idx], classes[idx])
        if name is not None:
            found.add(name)
    for parent, members in SUPERCLASSES.items():
        if found & members:
            found.add(parent)
    return found


def segmentation_stills(name: str, root: Path, split: str, mapping, media: Path) -> list[list]:
    """Copy one VOC-layout set's images into media/ and label them from their masks."""
    classes = (root / "labels.txt").read_text().split()
    sets = ["train", "val"] if split == "all" else [split]
    stems = []
    for s in sets:
        stems += (root / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split()
    rows = []
    for stem in sorted(set(stems)):
        target = media / f"{name}-{stem}.jpg"
        shutil.copyfile(root / "JPEGImages" / f"{stem}.jpg", target)
        for concept in sorted(
            mask_concepts(root / "SegmentationClass" / f"{stem}.png", classes, mapping)
        ):
            rows.append([concept, "local", target.name, "", ""])
    return rows


def camvid_videos(root: Path, split: str, media: Path) -> list[list]:
    """CamVid as one 1 fps video per drive sequence, each frame labelled by time range.

    The frames of one sequence are near-duplicates of their neighbours; as separate stills
    they would retrieve each other and inflate road/sky/building, exactly what same-video
    exclusion exists to prevent. As one video per sequence, a query's own drive is
    excluded and only *other* drives (and other sources) count.
    """
    import av

    classes = (root / "labels.txt").read_text().split()
    sets = ["train", "val"] if split == "all" else [split]
    stems = sorted(
        {
            s
            for name in sets
            for s in (root / "ImageSets/Segmentation" / f"{name}.txt").read_text().split()
        }
    )
    rows = []
    for seq in sorted({stem.split("_")[0] for stem in stems}):
        frames = [s for s in stems if s.split("_")[0] == seq]
        target = media / f"camvid-{seq}.mp4"
        with av.open(str(target), "w") as out:
            stream = out.add_stream("libx264", rate=1, options={"crf": "18", "g": "1"})
            first = np.asarray(Image.open(root / "JPEGImages" / f"{frames[0]}.jpg").convert("RGB"))
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = "yuv420p"
            for i, stem in enumerate(frames):
                rgb = np.asarray(Image.open(root / "JPEGImages" / f"{stem}.jpg").convert("RGB"))
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
                mask = root / "SegmentationClass" / f"{stem}.png"
                for concept in sorted(mask_concepts(mask, classes, CAMVID_CONCEPTS)):
                    rows.append(
                        [concept, "local", target.name, f"{max(i - 0.4, 0):.1f}", f"{i + 0.4:.1f}"]
                    )
            out.mux(stream.encode(None))
    return rows


def scene_stills(archive: Path, media: Path, per_class: int | None, seed: int) -> list[list]:
    """The test split of intel-scenes: one global label (its class) per still."""
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/test/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        test = Path(tmp) / "intel-scenes" / "test"
        for cls_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            files = sorted(cls_dir.glob("*.jpg"))
            if per_class is not None and len(files) > per_class:
                files = sorted(rng.choice(files, per_class, replace=False))
            for f in files:
                target = media / f"scenes-{cls_dir.name}-{f.name}"
                shutil.copyfile(f, target)
                rows.append([cls_dir.name, "global", target.name, "", ""])
    return rows


def shared_videos(media: Path) -> list[list]:
    """Copy the shared videos and take their labels from the reviewed label file."""
    with open(VIDEO_LABELS, newline="") as fh:
        rows = [
            [r["concept"], r["group"], r["video"], r["start"], r["end"]] for r in csv.DictReader(fh)
        ]
    for video in sorted({r[2] for r in rows} | {p.name for p in (SHARED / "videos").iterdir()}):
        src = SHARED / "videos" / video
        if src.suffix != ".md" and src.is_file():
            shutil.copyfile(src, media / video)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder to create.")
    parser.add_argument(
        "--split", choices=["val", "all"], default="val",
        help="CamVid/COCO128 split: val keeps frames the segmentation model did not train on.",
    )  # fmt: skip
    parser.add_argument("--scenes-per-class", type=int, default=None, help="Cap (default: all).")
    parser.add_argument(
        "--camvid-stills", action="store_true",
        help="CamVid frames as separate stills (near-duplicates of each other; inflates scores)"
        " instead of one 1 fps video per drive sequence.",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-files", type=int, default=3, help="Drop concepts labelled on fewer files."
    )
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args(argv)
    shared = args.shared
    if not shared.is_dir():
        print(f"error: development data not found at {shared}", file=sys.stderr)
        return 2
    media = args.out / "media"
    if media.exists():
        shutil.rmtree(media)
    media.mkdir(parents=True)
    seg = shared / "segmentation"
    rows = scene_stills(
        shared / "scenes" / "intel-scenes.tar.xz", media, args.scenes_per_class, args.seed
    )
    if args.camvid_stills:
        rows += segmentation_stills("camvid", seg / "camvid", args.split, CAMVID_CONCEPTS, media)
    else:
        rows += camvid_videos(seg / "camvid", args.split, media)
    rows += segmentation_stills("coco", seg / "coco128-voc", args.split, COCO_CONCEPTS, media)
    rows += shared_videos(media)
    # A concept on one or two files has (almost) no relevant candidates: its AP is 0 by
    # construction and would only drag the equally weighted overall down. Drop it, and say so.
    files_per_concept = Counter(
        (r[1], r[0]) for r in {(r[0], r[1], r[2]): r for r in rows}.values()
    )
    dropped = sorted(c for c, n in files_per_concept.items() if n < args.min_files)
    rows = [r for r in rows if (r[1], r[0]) not in set(dropped)]
    labels = args.out / "labels.csv"
    with atomic_path(labels) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["concept", "group", "video", "start", "end"])
        writer.writerows(rows)

    per_concept = Counter((g, c) for c, g, _ in {(r[0], r[1], r[2]) for r in rows})
    print(f"{len(list(media.iterdir()))} files in {media}, {len(rows)} labels in {labels}")
    if dropped:
        names = ", ".join(f"{g}/{c}" for g, c in dropped)
        print(f"dropped (fewer than {args.min_files} files): {names}")
    for (group, concept), n in sorted(per_concept.items()):
        print(f"  {group:6s} {concept:16s} {n:5d} files")
    out = args.out
    print("\nthen run:")
    for model, name in (("default", "proposed"), ("default-baseline", "baseline")):
        print(f"vidhash index {media} --out {out}/index-{name} --model {model} --every 1")
        print(f"vidhash annotate {out}/index-{name} --labels {labels}")
    print(
        f"vidhash evaluate {out}/index-proposed --compare {out}/index-baseline "
        f"--topk 10,50 --out {out}/report"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
