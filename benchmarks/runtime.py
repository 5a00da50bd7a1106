"""ONNX Runtime against torch eager: the same model's encode, side by side (issue 19).

Both runtimes load the same shipped model (or checkpoint) and encode the same uint8 crops
through ``embed`` (what indexing calls), at the same micro-batch and thread count, in
alternating passes; each keeps its best pass. Also printed: the code bits that differ
between the two, and the largest float difference (r and descriptors).

    python benchmarks/runtime.py --model default --threads 2 --micro-batch 4 --micro-batch 16

Target: ONNX Runtime >= 2x torch eager at micro-batch 4, 2 threads.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vidhash.models import load_model


def crops(n: int, seed: int = 0) -> np.ndarray:
    """``n`` 224x224 crops cut from scikit-image's photos (real pixels, not noise)."""
    import skimage.data

    from vidhash.transforms import center_crop_resize

    photos = [getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = photos[i % len(photos)]
        side = int(rng.integers(200, min(image.shape[:2]) + 1))
        top = int(rng.integers(0, image.shape[0] - side + 1))
        left = int(rng.integers(0, image.shape[1] - side + 1))
        out.append(center_crop_resize(image[top : top + side, left : left + side]))
    return np.stack(out)


def rate(net, images: np.ndarray, micro_batch: int) -> float:
    start = time.perf_counter()
    net.embed(images, batch_size=micro_batch)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--micro-batch", type=int, action="append")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    nets = {
        "onnx": load_model(args.model, runtime="onnx", threads=args.threads),
        "torch": load_model(args.model, runtime="torch"),
    }
    images = crops(args.images)
    a, b = (nets[k].embed(images) for k in ("onnx", "torch"))
    fa, fb = nets["onnx"].floats(images[:4]), nets["torch"].floats(images[:4])
    parity = {
        "bits_differing": int((np.unpackbits(a.codes) != np.unpackbits(b.codes)).sum()),
        "bits": int(a.codes.size * 8),
        "max_r_diff": float(np.abs(fa[0] - fb[0]).max()),
        "max_descriptor_diff": float(np.abs(fa[1] - fb[1]).max()) if fa[1] is not None else None,
    }
    print(json.dumps({"model": args.model, **parity}))
    for micro_batch in args.micro_batch or [4]:
        best = {"onnx": 0.0, "torch": 0.0}
        for _ in range(args.repeats):
            for name, net in nets.items():
                best[name] = max(best[name], rate(net, images, micro_batch))
        print(
            json.dumps(
                {
                    "micro_batch": micro_batch,
                    "threads": args.threads,
                    "onnx_img_s": round(best["onnx"], 1),
                    "torch_img_s": round(best["torch"], 1),
                    "ratio": round(best["onnx"] / best["torch"], 2),
                }
            )
        )


if __name__ == "__main__":
    main()
