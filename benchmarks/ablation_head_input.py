"""What should the hash head read from the PSP? A measured ablation.

Trains the same head (same width, epochs, seed, schedule) on the same frozen backbone
and PSP, reading the PSP's pre-softmax class ``scores``, its ``stacked`` map (original +
four streams), or ``both`` (each adaptively average-pooled to pool x pool), plus the
DLBHC ``baseline`` (the pooled backbone map), and prints CIFAR-10-protocol mAP for each.
The backbone maps are cached on disk once, so each variant costs only the PSP pass and
the FC stack.

    python benchmarks/ablation_head_input.py --seg-checkpoint SEG --train DIR --test DIR \
        --train-per-class 2000 --test-per-class 100 --width 512 --epochs 10 --drop-after 7
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vidhash.train.hashing import HashConfig, train_hashing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seg-checkpoint", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out-dir", default="/tmp/vh-train/ablation")
    parser.add_argument("--cache-dir", default="~/.cache/vidhash/features")
    parser.add_argument("--variants", nargs="+", default=["scores", "stacked", "both", "baseline"])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--drop-after", type=int, default=7)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-after", type=float, default=1e-4)
    parser.add_argument("--train-per-class", type=int)
    parser.add_argument("--test-per-class", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for variant in args.variants:
        arch = "baseline" if variant == "baseline" else "psp"
        cfg = HashConfig.from_options(
            train_dir=args.train,
            test_dir=args.test,
            out=str(Path(args.out_dir) / f"{variant}-w{args.width}.safetensors"),
            arch=arch,
            objective="paper",
            bits=args.bits,
            seg_checkpoint=args.seg_checkpoint,
            width=args.width,
            head_input="both" if arch == "baseline" else variant,
            epochs=args.epochs,
            drop_after=args.drop_after,
            lr=args.lr,
            lr_after=args.lr_after,
            device="cpu",
            seed=args.seed,
            cache_dir=args.cache_dir,
            train_per_class=args.train_per_class,
            test_per_class=args.test_per_class,
        )
        started = time.time()
        metrics = train_hashing(cfg, log=lambda s: print(s, flush=True))
        row = {"variant": variant, "width": args.width, **metrics,
               "seconds": round(time.time() - started, 1)}  # fmt: skip
        rows.append(row)
        print("RESULT " + json.dumps(row), flush=True)
    print("| head input | width | test acc | mAP@1000 | mAP@all | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['width']} | {r['test_acc']} | {r.get('map@1000')} | "
              f"{r['map@all']} | {r['seconds']} |")  # fmt: skip


if __name__ == "__main__":
    main()
