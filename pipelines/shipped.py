"""The shipped `default` / `default-baseline` recipe end to end (issues 12, 18; docs/MODELS.md).

    python pipelines/shipped.py --shared ../shared/data --cifar /tmp/data/cifar10 \
        --intel /tmp/data/intel-scenes --photos /tmp/data/varied-photos \
        --out shipped-run [--leave-out-intel] [--ship]

(`--photos`: `../shared/data/photos/varied-photos.tar` unpacked.)

1. `train-seg`: neck + PSP on the fused Lite0 map (CamVid + COCO128-VOC + clothing
   parsing + human masks, one merged label list), 16 epochs;
2. `train-hash --arch psp --levels s8,s16,head`: the distill objective on CIFAR-10 (500
   per class) + Intel scenes train labels + an unlabelled pool (the shared videos and
   the `videos-more` clips every 1 s, CamVid's, COCO128's, the mask sets' photos, and the
   1,000 ImageNet sample photos), 4 views, backbone + PSP frozen. The three labelled
   photo sources (ImageNet-DET-200, clothing-20, Imagenette) stay out of every step, so
   they measure classes the nets never saw;
3. `train-hash --arch baseline`: the same, without the neck and PSP;
4. `fit-descriptor`: each net's stored descriptor (Lite0 head, PCA 256, float16) on the
   same unlabelled pool;
5. `benchmarks/codes.py`: both against the float / ITQ / LSH anchors on Intel test, the
   left-out photo sources and the shared videos' concepts, codes alone and two-stage;
6. with `--ship`, both become `default` / `default-baseline` (maintainers only).

`--reuse-psp` skips step 1 and takes the backbone, neck and PSP of the shipped `default`
instead (as a train-seg checkpoint): training the PSP on all four mask sets costs about
8.5 min an epoch on a 2-core CPU (2.3 h for the 16 epochs).

`--leave-out-intel` trains without Intel scenes (no labels, not in the pool), so Intel
test measures unseen classes. Every step is one command, echoed as it runs; the feature
cache (`--cache-dir`) makes reruns cheap.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from paper import vidhash  # the sibling pipeline's one-command runner

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cifar", type=Path, required=True, help="unpacked: train/, test/")
    parser.add_argument("--intel", type=Path, required=True, help="unpacked: train/, test/")
    parser.add_argument("--photos", type=Path, required=True, help="unpacked varied-photos/")
    parser.add_argument("--out", type=Path, default=Path("shipped-run"))
    parser.add_argument("--cache-dir", default="~/.cache/vidhash/features")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--leave-out-intel", action="store_true")
    parser.add_argument("--ship", action="store_true", help="replace the shipped pair")
    parser.add_argument("--reuse-psp", action="store_true", help="the shipped default's PSP")
    args = parser.parse_args()

    out, seg_data = args.out, args.shared / "segmentation"
    out.mkdir(parents=True, exist_ok=True)
    seg = out / "seg.safetensors"
    common = ["--device", args.device, "--cache-dir", args.cache_dir]
    if args.reuse_psp:
        shipped_psp(seg)
    else:
        vidhash(
            "train-seg", "--data", seg_data / "camvid", "--data", seg_data / "coco128-voc",
            "--data", seg_data / "clothing-parsing", "--data", seg_data / "human",
            "--out", seg, "--backbone", "efficientnet_lite0_ms",
            "--neck", "s8:32,s16:64,head:128", "--decoder-channels", "128",
            "--optimizer", "adam", "--lr", "1e-3", "--lr-after", "1e-4", "--drop-after", "12",
            "--epochs", "16", "--weight-decay", "1e-4", "--views", "6",
            "--class-weights", "median-freq", "--batch-size", "16", *common,
        )  # fmt: skip
    pool = [
        args.shared / "videos", args.shared / "videos-more",
        *(seg_data / name / "JPEGImages"
          for name in ("camvid", "coco128-voc", "clothing-parsing", "human")),
        args.photos / "imagenet-samples",
    ]  # fmt: skip
    data = [
        "--train", args.cifar / "train", "--train-per-class", "500",
        "--test", args.cifar / "test", "--test-per-class", "100",
        *(arg for source in pool for arg in ("--unlabelled", source)),
    ]  # fmt: skip
    if not args.leave_out_intel:
        data += ["--train", args.intel / "train"]
    recipe = ["--bits", "48", "--width", "1024", "--pool", "1", "--views", "4", *common]
    psp, base = out / "psp.safetensors", out / "baseline.safetensors"
    vidhash("train-hash", *data, *recipe, "--arch", "psp", "--seg-checkpoint", seg,
            "--levels", "s8,s16,head", "--out", psp)  # fmt: skip
    vidhash("train-hash", *data, *recipe, "--arch", "baseline", "--out", base)
    for trained in (psp, base):
        described = trained.with_name(f"{trained.stem}-described.safetensors")
        vidhash("fit-descriptor", trained, *(arg for s in pool for arg in ("--pool", s)),
                "--source", "head", "--dims", "256", "--out", described)  # fmt: skip
    psp, base = (p.with_name(f"{p.stem}-described.safetensors") for p in (psp, base))
    bench = [sys.executable, str(REPO / "benchmarks" / "codes.py"), "--model", str(psp),
             "--model", str(base), "--intel", str(args.intel), "--videos",
             str(args.shared / "videos"), "--photos", str(args.photos)]  # fmt: skip
    print(f"\n$ {' '.join(bench)}", flush=True)
    subprocess.run(bench, check=True)
    if args.ship:
        for name, ckpt, what in (("default", psp, "PSP hash net"),
                                 ("default-baseline", base, "DLBHC baseline")):  # fmt: skip
            vidhash("models", "--ship", name, ckpt, "--description", f"{what} (shipped.py)")


def shipped_psp(out: Path) -> None:
    """The shipped default's backbone, neck and PSP as a train-seg checkpoint at ``out``."""
    from vidhash.models import shipped_path
    from vidhash.models.checkpoint import build_from_header, load_checkpoint, save_checkpoint

    net, header = load_checkpoint(shipped_path("default"))
    head = {k: header["head"][k] for k in ("decoder_channels", "neck", "detail")}
    seg_header = {
        "arch": "psp-seg", "backbone": header["backbone"], "seg_classes": header["seg_classes"],
        "preprocessing": header["preprocessing"], "head": head,
        "train": {"data": header["segmentation"]["data"]},
        "metrics": header["segmentation"]["metrics"],
        "provenance": {"neck + PSP": header["provenance"]["neck + PSP"],
                       "backbone": header["provenance"]["backbone"]},
        "shipped_from": "the shipped default's neck + PSP",
    }  # fmt: skip
    seg = build_from_header(seg_header)
    own = seg.state_dict()
    seg.load_state_dict({k: v for k, v in net.state_dict().items() if k in own}, strict=True)
    save_checkpoint(seg, out, seg_header)
    print(f"\n{out}: the shipped default's backbone + neck + PSP", flush=True)


if __name__ == "__main__":
    main()
