"""CIFAR-10's full hashing protocol for the shipped architecture (issue 18, item 5).

    python pipelines/cifar_protocol.py --cifar /tmp/data/cifar10 --out cifar-run \
        [--shipped default] [--skip-baseline] [--benchmark-trained]

The protocol of DLBHC (Lin et al. 2015) and the deep hashing papers after it: the network
is trained on CIFAR-10's 50,000 training images with their labels, the database is those
50,000 images, the queries 1,000 test images (100 a class), and the figure is mAP@1000 of
the Hamming ranking (`vidhash.metrics`).

1. the shipped `default`'s backbone, neck and PSP as a train-seg checkpoint
   (`pipelines/shipped.py`'s `shipped_psp`), frozen, as in the shipped recipe;
2. `train-hash --arch psp --levels s8,s16,head --width 1024 --pool 1 --objective paper`
   on the 50,000 (one view: the backbone's maps of 50,000 images are cached once, then
   an epoch is only the FC stack); its own report is the protocol's figure (database = the
   first training root, queries = the first 100 test images of each class);
3. the same with `--arch baseline` (DLBHC: no PSP), unless `--skip-baseline`;
4. `benchmark-hashing --protocol dlbhc` for `--shipped` (the shipped model, trained on
   5,000 of these images among its other data), and with `--benchmark-trained` for the
   trained nets too: the same database, 100 seeded random test queries a class (each
   costs a full encode of 51,000 images, ~12 min on a 2-core CPU).

Every step is one `vidhash` command, echoed as it runs; the feature cache makes reruns
cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from paper import vidhash  # the sibling pipeline's one-command runner
from shipped import shipped_psp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, required=True, help="unpacked: train/, test/")
    parser.add_argument("--out", type=Path, default=Path("cifar-run"))
    parser.add_argument("--shipped", default="default", help="shipped model measured beside")
    parser.add_argument("--epochs", default="30")
    parser.add_argument("--cache-dir", default="~/.cache/vidhash/features")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--benchmark-trained", action="store_true")
    args = parser.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    seg = out / "seg.safetensors"
    shipped_psp(seg)
    common = [
        "--train", args.cifar / "train", "--test", args.cifar / "test",
        "--test-per-class", "100", "--objective", "paper", "--epochs", args.epochs,
        "--bits", "48", "--width", "1024", "--pool", "1", "--views", "1", "--topk", "1000",
        "--device", args.device, "--cache-dir", args.cache_dir,
    ]  # fmt: skip
    psp, base = out / "psp.safetensors", out / "baseline.safetensors"
    vidhash("train-hash", *common, "--arch", "psp", "--seg-checkpoint", seg,
            "--levels", "s8,s16,head", "--out", psp)  # fmt: skip
    trained = {"psp": psp}
    if not args.skip_baseline:
        vidhash("train-hash", *common, "--arch", "baseline", "--out", base)
        trained["baseline"] = base
    models = {**(trained if args.benchmark_trained else {}), args.shipped: args.shipped}
    for name, model in models.items():
        vidhash("benchmark-hashing", args.cifar, "--model", model, "--protocol", "dlbhc",
                "--out", out / f"hashing-{name}", "--device", "cpu")  # fmt: skip


if __name__ == "__main__":
    main()
