"""A ready indexing pipeline driven by a TOML config: local engine, or Ray with --engine ray.

    python pipelines/index_videos.py pipelines/index.example.toml [--engine local|ray]

It runs `vidhash index` with the config's options, then `vidhash annotate` when the config
names a labels file. See pipelines/README.md for running on an existing Ray cluster.
"""

from __future__ import annotations

import argparse
import shlex
import tomllib
from pathlib import Path

from vidhash.cli import cli


def index_argv(config: dict, engine: str) -> list[str]:
    argv = ["index", config["input"], "--out", config["out"], "--model", config["model"]]
    argv += ["--mode", config.get("mode", "fast"), "--batch-size", str(config["batch_size"])]
    if "count" in config:
        argv += ["--count", str(config["count"])]
    else:
        argv += ["--every", str(config.get("every", 2.0))]
    if engine == "ray":
        ray = config.get("ray", {})
        argv += [
            "--engine",
            "ray",
            "--num-gpus-per-worker",
            str(ray.get("num_gpus_per_worker", 0)),
            "--decode-cpus",
            str(ray.get("decode_cpus", 1)),
        ]
        if ray.get("address"):
            argv += ["--address", ray["address"]]
    else:
        argv += ["--workers", str(config.get("local", {}).get("workers", 2))]
    return argv


def run(argv: list[str]) -> None:
    print(f"$ vidhash {shlex.join(argv)}", flush=True)
    try:
        cli.main(args=argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, 1, None):  # 1: finished, some inputs recorded as failed
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    config = tomllib.loads(args.config.read_text())
    run(index_argv(config, args.engine))
    if config.get("labels"):
        run(["annotate", config["out"], "--labels", config["labels"]])


if __name__ == "__main__":
    main()
