"""The paper's recipe end to end (Gkountakos et al.), with the DLBHC baseline beside it.

    python pipelines/paper.py --seg VOC2012 [--seg CAMVID ...] --images CIFAR10 \
        --videos VIDEOS --labels labels.csv --out paper-run [--backbone vgg16 \
        --backbone-weights vgg16.pth] [--epochs 30]

1. `train-seg`: the PSP module on pixel masks (VOC layout; several sets are merged);
2. `train-hash --arch psp --objective paper`: the hash layer on image labels (the paper's
   point-wise softmax loss, SGD), reading the trained PSP;
3. `train-hash --arch baseline --objective paper`: DLBHC, the same recipe without
   segmentation;
4. `benchmark-hashing`: mAP@1000 / mAP@all under the dlbhc protocol, for both;
5. `index` the videos with both, `annotate` them, and `evaluate --compare`: the per-concept
   MAP@10 / MAP@50 tables of the paper's Tables II/III, plus report.html.

Every step is one `vidhash` command (echoed as it runs); checkpoints resume with --resume.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from vidhash.cli import cli


def vidhash(*args: str | Path) -> None:
    argv = [str(a) for a in args]
    print(f"\n$ vidhash {shlex.join(argv)}", flush=True)
    try:
        cli.main(args=argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, 1, None):  # index: 1 = finished, some inputs recorded failed
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seg",
        type=Path,
        action="append",
        required=True,
        help="VOC-layout segmentation set (repeat to merge)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        help="ImageFolder set with train/ and test/ (e.g. CIFAR-10)",
    )
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True, help="concept labels CSV")
    parser.add_argument("--out", type=Path, default=Path("paper-run"))
    # The paper's PSP reads a stride-8 map directly (VGG16 conv4_3): a single-map backbone.
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--backbone-weights", default="default")
    parser.add_argument("--bits", default="48")
    parser.add_argument("--epochs", default="30")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    seg, psp, base = out / "seg.safetensors", out / "psp.safetensors", out / "base.safetensors"
    common = ["--epochs", args.epochs, "--device", args.device]
    backbone = ["--backbone", args.backbone, "--backbone-weights", args.backbone_weights]

    seg_args = [a for d in args.seg for a in ("--data", d)]
    vidhash("train-seg", *seg_args, "--out", seg, *backbone, *common)
    split = ["--train", args.images / "train", "--test", args.images / "test"]
    vidhash(
        "train-hash",
        *split,
        "--out",
        psp,
        "--arch",
        "psp",
        "--seg-checkpoint",
        seg,
        "--bits",
        args.bits,
        "--objective",
        "paper",
        *common,
    )
    vidhash(
        "train-hash",
        *split,
        "--out",
        base,
        "--arch",
        "baseline",
        *backbone,
        "--bits",
        args.bits,
        "--objective",
        "paper",
        *common,
    )
    for name, ckpt in (("psp", psp), ("baseline", base)):
        vidhash(
            "benchmark-hashing",
            args.images,
            "--model",
            ckpt,
            "--protocol",
            "dlbhc",
            "--out",
            out / f"hashing-{name}",
        )
        vidhash("index", args.videos, "--out", out / f"index-{name}", "--model", ckpt)
        vidhash("annotate", out / f"index-{name}", "--labels", args.labels)
    vidhash(
        "evaluate",
        out / "index-psp",
        "--compare",
        out / "index-baseline",
        "--topk",
        "10,50",
        "--out",
        out / "report",
    )
    print(f"\nTables and report.html: {out / 'report'}")


if __name__ == "__main__":
    main()
