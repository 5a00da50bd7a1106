"""Hashing-net img/s and its ratio to the bare backbone on CPU (issues 3 and 12).

Both are measured in the same run, interleaved (backbone, net, backbone, net, ...), and
each keeps its best repeat, so a noisy shared machine hurts both alike. Two clocks: wall
time (what a user sees) and process CPU time (with ``--threads 1`` this is the compute
actually spent, and stays meaningful when other jobs share the cores). The net is a
shipped model (or a checkpoint path); the bare backbone is that model's own backbone
(truncated, or all its levels), so the ratio is exactly what the neck, PSP and hash head
add. ``encode_img_s`` is what indexing gets: ``net.encode`` on uint8 crops, at the CPU
micro-batch ``--micro-batch`` (4, encode's CPU default).

    python benchmarks/throughput.py --model default --model default-baseline
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vidhash.models import load_model


def images_per_second(fn, x: torch.Tensor) -> tuple[float, float]:
    """(wall-clock img/s, CPU-time img/s) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(x)
    return len(x) / (time.perf_counter() - wall), len(x) / (time.process_time() - cpu)


def measure(
    model_name: str, batch: int, repeats: int, threads: int | None, micro_batch: int = 4
) -> dict:
    if threads:
        torch.set_num_threads(threads)
    net = load_model(model_name, runtime="torch").eval()
    x = torch.rand(batch, 3, 224, 224)
    crops = (x.permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()
    backbone_rates, net_rates, encode_rates = [], [], []
    with torch.inference_mode():
        net.backbone(x[:4])  # warm-up: allocator, kernels
        net(x[:4])
        net.encode(crops[:4])
        for _ in range(repeats):
            backbone_rates.append(images_per_second(net.backbone, x))
            net_rates.append(images_per_second(net, x))
            encode_rates.append(
                images_per_second(lambda c: net.encode(c, batch_size=micro_batch), crops)
            )
    bb_wall, bb_cpu = (max(r[i] for r in backbone_rates) for i in (0, 1))
    net_wall, net_cpu = (max(r[i] for r in net_rates) for i in (0, 1))
    return {
        "model": model_name,
        "arch": net.config["arch"],
        "backbone": net.config["backbone"]["name"],
        "width": net.config["head"]["width"],
        "batch": batch,
        "threads": torch.get_num_threads(),
        "backbone_img_s": round(bb_wall, 2),
        "net_img_s": round(net_wall, 2),
        "ratio_wall": round(net_wall / bb_wall, 3),
        "backbone_img_per_cpu_s": round(bb_cpu, 2),
        "net_img_per_cpu_s": round(net_cpu, 2),
        "ratio_cpu": round(net_cpu / bb_cpu, 3),
        "encode_micro_batch": micro_batch,
        "encode_img_s": round(max(r[0] for r in encode_rates), 2),
        "encode_img_per_cpu_s": round(max(r[1] for r in encode_rates), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="shipped name or checkpoint path")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--micro-batch", type=int, default=4)
    args = parser.parse_args()
    for name in args.model or ["default"]:
        result = measure(name, args.batch, args.repeats, args.threads, args.micro_batch)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
