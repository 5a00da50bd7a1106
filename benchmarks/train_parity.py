"""Does training still give the same checkpoints? (issue 20: the training wing refactor)

Runs a fixed set of short, fixed-seed ``train-seg`` and ``train-hash`` commands (every
path of the trainer: multi-scale neck + median-frequency weights, the distill objective
with an unlabelled pool and ITQ init, the paper objective, a trainable PSP on cached maps,
a trainable backbone on images, float16 storage, and resuming) on a tiny data set cut
from ``../shared/data``, once per code tree, and compares what they wrote: every tensor
(sha256 of dtype, shape and bytes), the checkpoint header and the resume state's history,
the metrics each command printed and the feature cache's file names (its keys). Fields
that record wall time (``epoch_seconds``, ``cache_seconds``) are the only ones left out.

    python benchmarks/train_parity.py --before /tmp/train-before --code-before /tmp/vh-base
    python benchmarks/train_parity.py --before /tmp/train-before   # reuse the saved runs

Each side runs in its own folder with relative paths (so the headers' ``out`` and
``cache_dir`` read the same) and its own empty feature cache, one torch thread, ``nice``.
Exit status 0 when every file matches, 1 otherwise (the differences are printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TIME_FIELDS = {"epoch_seconds", "cache_seconds"}

SEG = shlex.split(
    "--data {D}/seg/camvid --data {D}/seg/coco --neck s8:8,s16:8,head:16 --decoder-channels 16"
    " --optimizer adam --lr 1e-3 --lr-after 1e-4 --drop-after 2 --weight-decay 1e-4 --views 2"
    " --class-weights median-freq --batch-size 8 --device cpu --cache-dir cache"
)
HASH = shlex.split(
    "--train {D}/cifar10/train --test {D}/cifar10/test --bits 16 --width 32 --pool 1"
    " --device cpu --cache-dir cache --topk 10"
)
POOL = ["--unlabelled", "{D}/pool", "--unlabelled-every", "1"]
PSP = ["--arch", "psp", "--seg-checkpoint", "seg.safetensors", "--levels", "s8,s16,head"]
# (name, arguments): run in this order, in one folder per code tree.
RUNS: list[tuple[str, list[str]]] = [
    ("seg", ["train-seg", *SEG, "--epochs", "3", "--out", "seg.safetensors"]),
    ("seg-resume-1", ["train-seg", *SEG, "--epochs", "2", "--out", "seg-resume.safetensors"]),
    ("seg-resume-2", ["train-seg", *SEG, "--epochs", "3", "--resume",
                      "--out", "seg-resume.safetensors"]),
    ("psp-distill", ["train-hash", *HASH, *POOL, *PSP, "--views", "2", "--epochs", "3",
                     "--drop-after", "2", "--batch-size", "16", "--out", "psp.safetensors"]),
    ("psp-itq-fp16", ["train-hash", *HASH, *POOL, *PSP, "--init", "itq", "--w-quant", "0.2",
                      "--teacher", "s32,head", "--train-per-class", "6", "--epochs", "2",
                      "--batch-size", "16", "--store-dtype", "float16",
                      "--out", "psp-itq.safetensors"]),
    ("baseline-paper", ["train-hash", *HASH, "--arch", "baseline", "--objective", "paper",
                        "--bits", "12", "--epochs", "3", "--drop-after", "2", "--lr", "0.01",
                        "--batch-size", "8", "--out", "base.safetensors"]),
    ("psp-train-psp", ["train-hash", *HASH, *PSP, "--objective", "paper", "--train-psp",
                       "--head-input", "both", "--epochs", "2", "--batch-size", "8",
                       "--lr", "0.01", "--out", "psp-map.safetensors"]),
    ("baseline-train-backbone", ["train-hash", *HASH, "--arch", "baseline",
                                 "--train-backbone", "--train-per-class", "4",
                                 "--test-per-class", "2", "--epochs", "1", "--batch-size", "8",
                                 "--out", "base-full.safetensors"]),
    ("hash-resume-1", ["train-hash", *HASH, *PSP, "--objective", "paper", "--epochs", "2",
                       "--batch-size", "8", "--lr", "0.01", "--out", "psp-res.safetensors"]),
    ("hash-resume-2", ["train-hash", *HASH, *PSP, "--objective", "paper", "--epochs", "3",
                       "--batch-size", "8", "--lr", "0.01", "--resume",
                       "--out", "psp-res.safetensors"]),
]  # fmt: skip


def make_data(data: Path, shared: Path) -> None:
    """The tiny set: 4 CIFAR-10 classes (8 train, 3 test each), CamVid 8+3 and COCO128
    6+2 masks (symlinks), a pool of 5 human-set photos and a 1.6 s video."""
    if (data / "done").is_file():
        return
    classes = ("airplane", "cat", "ship", "truck")
    for split, n in (("train", 8), ("test", 3)):
        with tarfile.open(shared / "cifar10" / f"cifar10-{split}.tar.xz") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if (member.isfile() and len(parts) == 4 and parts[2] in classes
                        and int(Path(parts[3]).stem) < n):  # fmt: skip
                    tar.extract(member, data, filter="data")
    for name, src, n_train, n_val in (("camvid", "camvid", 8, 3), ("coco", "coco128-voc", 6, 2)):
        src_root, root = shared / "segmentation" / src, data / "seg" / name
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "labels.txt").write_text((src_root / "labels.txt").read_text())
        for split, n in (("train", n_train), ("val", n_val)):
            lines = (src_root / f"ImageSets/Segmentation/{split}.txt").read_text().split()[:n]
            (root / f"ImageSets/Segmentation/{split}.txt").write_text("\n".join(lines) + "\n")
            for image_id in lines:
                for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png")):
                    link = root / sub / f"{image_id}.{ext}"
                    if not link.exists():
                        link.symlink_to(src_root / sub / f"{image_id}.{ext}")
    pool = data / "pool"
    pool.mkdir(exist_ok=True)
    photos = sorted((shared / "segmentation/human/JPEGImages").iterdir())[:5]
    for src in [*photos, shared / "videos" / "asl-eat.mkv"]:
        if not (pool / src.name).exists():
            (pool / src.name).symlink_to(src)
    (data / "done").write_text("")


def run_all(code: Path, out: Path, data: Path) -> None:
    """Every command of :data:`RUNS` with ``code`` first on the path, in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "cache", ignore_errors=True)  # each side computes its own features
    for old in [*out.glob("*.safetensors"), *out.glob("*.resume")]:
        old.unlink()
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}  # fmt: skip
    for name, args in RUNS:
        argv = [a.replace("{D}", str(data)) for a in args]
        started = time.time()
        done = subprocess.run(
            ["nice", sys.executable, "-m", "vidhash", *argv], cwd=out, env=env,
            capture_output=True, text=True,
        )  # fmt: skip
        (out / f"{name}.stdout").write_text(done.stdout)
        (out / f"{name}.stderr").write_text(done.stderr)
        print(f"{code}: {name} rc={done.returncode} {time.time() - started:.1f} s", flush=True)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")


def _strip(value):
    """``value`` without the wall-time fields (at any depth)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIME_FIELDS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def fingerprint(path: Path) -> dict:
    """What a safetensors file holds: each tensor's sha256, and its metadata without time
    (JSON text re-dumped in its own key order, so an order change shows too)."""
    tensors = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = {k: json.dumps(_strip(json.loads(v))) for k, v in (fh.metadata() or {}).items()}
        for name in sorted(fh.keys()):  # noqa: SIM118 - safe_open API
            t = fh.get_tensor(name).contiguous()
            digest = hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            tensors[name] = f"{t.dtype} {tuple(t.shape)} {digest.hexdigest()[:16]}"
    return {"meta": meta, "tensors": tensors}


def _printed(path: Path) -> object:
    """The metrics JSON a command printed (its whole stdout), without time fields."""
    return _strip(json.loads(path.read_text()))


def compare(before: Path, after: Path) -> list[str]:
    """One line per difference between the two folders' checkpoints and printed metrics."""
    problems = []
    files = sorted(p.name for p in before.iterdir() if p.suffix in (".safetensors", ".resume"))
    for name in files:
        a, b = fingerprint(before / name), fingerprint(after / name)
        for key in sorted(set(a["tensors"]) | set(b["tensors"])):
            if a["tensors"].get(key) != b["tensors"].get(key):
                problems.append(f"{name}: tensor {key}: {a['tensors'].get(key)} != "
                                f"{b['tensors'].get(key)}")  # fmt: skip
        if a["meta"] != b["meta"]:
            problems.append(f"{name}: header differs:\n  {a['meta']}\n  {b['meta']}")
        same = a == b
        print(f"{name}: {len(a['tensors'])} tensors and header", "same" if same else "DIFFER")
    for name, _ in RUNS:
        if _printed(before / f"{name}.stdout") != _printed(after / f"{name}.stdout"):
            problems.append(f"{name}: printed metrics differ")
    # Cache files are named by their keys: the same names mean old caches are still read.
    caches = [sorted(p.name for p in (side / "cache").iterdir()) for side in (before, after)]
    if caches[0] != caches[1]:
        problems.append(f"feature cache keys differ: {set(caches[0]) ^ set(caches[1])}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=Path("/tmp/train-before"))
    parser.add_argument("--code-before", type=Path, help="run the old code (else reuse --before)")
    parser.add_argument("--after", type=Path, default=Path("/tmp/train-after"))
    parser.add_argument("--code-after", type=Path, default=ROOT)
    parser.add_argument("--data", type=Path, default=Path("/tmp/vh-parity-data"))
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--only-before", action="store_true")
    args = parser.parse_args()
    make_data(args.data, args.shared)
    if args.code_before:
        run_all(args.code_before, args.before, args.data)
    if args.only_before:
        return
    run_all(args.code_after, args.after, args.data)
    problems = compare(args.before, args.after)
    print("\n".join(problems) if problems else "PARITY: every checkpoint and metric identical")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
