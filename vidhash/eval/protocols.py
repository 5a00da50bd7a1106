"""The standard image-retrieval protocols for hashing, on an ImageFolder data set.

Hashing papers disagree about splits more than about methods, so every output names its
protocol and its split sizes. Protocols (queries drawn with a seeded RNG, per class, from
the *test* split, in sorted file order):

* ``dlbhc`` (Lin et al. 2015, DLBHC): 1,000 queries (100 per class) from test;
  database = the whole train split (50,000 for CIFAR-10).
* ``cifar10-1`` (the "1k / 59k" protocol of DPSH, HashNet and most later work): 1,000
  queries (100 per class) from test; database = the rest of test + all of train
  (59,000 for CIFAR-10).

Relevance: same class. Scores come from ``vidhash.eval.metrics``: mAP@1000 (DLBHC R_K
normalisation), mAP@all, precision@K for K = 1..1000 and precision-recall by Hamming radius.
Ties in distance follow ``vidhash.metrics``' one rule with the database keyed by relative file
path (``train-hash`` keys its test-set mAP the same way, so both agree on the same codes).
``vidhash.eval.protocol_outputs`` writes a run's files, each tagged with its protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidhash.errors import InputError, UsageError
from vidhash.eval import metrics
from vidhash.eval.protocol_outputs import write_outputs
from vidhash.fsutil import atomic_path
from vidhash.media import read_rgb
from vidhash.metrics import path_key
from vidhash.transforms import center_crop_resize

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFINITIONS = (
    "AP@K as in DLBHC (normalised by relevant items in the top K); "
    "mAP@all = the same with K = whole database (R = all relevant); relevance = same "
    "class; ties in distance broken by relative file path"
)


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    database: str  # "train" or "train+test-rest"


PROTOCOLS: dict[str, Protocol] = {
    "dlbhc": Protocol("dlbhc", "DLBHC: 100 queries per class from test; database = train", "train"),
    "cifar10-1": Protocol(
        "cifar10-1",
        "1k/59k: 100 queries per class from test; database = rest of test + train",
        "train+test-rest",
    ),
}


@dataclass
class ImageFolderData:
    """All images of train/ and test/, one flat list; ``split`` says which is which."""

    root: Path
    classes: list[str]
    paths: list[Path]
    labels: np.ndarray  # class index per image
    split: np.ndarray  # "train" / "test" per image


def scan_image_folder(root: str | Path) -> ImageFolderData:
    """Read ``root/{train,test}/<class>/*``; class order = sorted train class folders."""
    root = Path(root)
    if root.is_file() and root.name.endswith((".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")):
        raise InputError(
            f"{root} is an archive; extract it first (e.g. `mkdir -p DIR && tar -xJf {root} "
            "-C DIR`) and pass the folder holding train/ and test/"
        )
    if not root.is_dir():
        raise InputError(f"data set not found: {root}")
    missing = [s for s in ("train", "test") if not (root / s).is_dir()]
    if missing:
        archives = sorted(p.name for p in root.glob("*.tar*"))
        hint = (
            f"; found archives {archives}: extract them with `tar -xJf ARCHIVE -C DIR` "
            "and pass the folder that holds train/ and test/"
            if archives
            else "; expected the ImageFolder layout DATASET/{train,test}/<class>/*.jpg"
        )
        raise InputError(f"{root} has no {' or '.join(f'{m}/' for m in missing)}{hint}")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"{root / 'train'} has no class folders")
    paths: list[Path] = []
    labels: list[int] = []
    splits: list[str] = []
    for split in ("train", "test"):
        for ci, cls in enumerate(classes):
            folder = root / split / cls
            files = (
                sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if folder.is_dir()
                else []
            )
            paths += files
            labels += [ci] * len(files)
            splits += [split] * len(files)
    return ImageFolderData(root, classes, paths, np.array(labels), np.array(splits))


def split_protocol(
    data: ImageFolderData,
    protocol: str,
    queries_per_class: int = 100,
    seed: int = 0,
    database_per_class: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, database indices) into ``data.paths`` for the named protocol.

    ``database_per_class`` caps the database per class (seeded) for quick runs; the
    outputs then say the protocol was reduced.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    rng = np.random.default_rng(seed)
    queries = []
    for ci, cls in enumerate(data.classes):
        pool = np.flatnonzero((data.split == "test") & (data.labels == ci))
        if len(pool) < queries_per_class:
            raise InputError(
                f"class {cls!r} has {len(pool)} test images, fewer than the "
                f"{queries_per_class} queries per class the protocol needs"
            )
        queries.append(np.sort(rng.choice(pool, queries_per_class, replace=False)))
    query_idx = np.concatenate(queries)
    in_db = data.split == "train"
    if PROTOCOLS[protocol].database == "train+test-rest":
        in_db = in_db | (data.split == "test")
        in_db[query_idx] = False
    db_idx = np.flatnonzero(in_db)
    if database_per_class is not None:
        capped = []
        for ci in range(len(data.classes)):
            pool = db_idx[data.labels[db_idx] == ci]
            take = min(database_per_class, len(pool))
            capped.append(np.sort(rng.choice(pool, take, replace=False)))
        db_idx = np.concatenate(capped)
    return query_idx, db_idx


def load_image(path: Path, size: int = 224) -> np.ndarray:
    """RGB uint8 ``size`` x ``size``: the one image reader, then the shared crop + resize."""
    return center_crop_resize(read_rgb(path), size)


def encode_paths(
    paths: list[Path],
    encode: Callable[[np.ndarray], np.ndarray],
    nbytes: int,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Codes for ``paths`` in batches; unreadable images become a failure, not a crash.

    Returns (codes (N, nbytes), ok mask (N,), one-line errors).
    """
    from tqdm import tqdm

    codes = np.zeros((len(paths), nbytes), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    errors: list[str] = []
    bar = tqdm(total=len(paths), unit="img", desc="encode", disable=not progress)
    for start in range(0, len(paths), batch_size):
        images, rows = [], []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                images.append(load_image(paths[i]))
                rows.append(i)
            except (InputError, ValueError, OSError, cv2.error) as exc:
                errors.append(f"{paths[i]}: {' '.join(str(exc).split())}")
        if images:
            codes[rows] = encode(np.stack(images))
            ok[rows] = True
        bar.update(min(batch_size, len(paths) - start))
    bar.close()
    return codes, ok, errors


def cached_codes(
    data: ImageFolderData,
    needed: np.ndarray,
    encode: Callable[[np.ndarray], np.ndarray],
    model_id: str,
    code_bits: int,
    cache_dir: Path,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Codes of ``data.paths[needed]``, reusing a per-model cache so both protocols and reruns
    encode each image once. The cache is keyed by model id and file paths."""
    nbytes = (code_bits + 7) // 8
    cache = cache_dir / f"codes-{model_id[:16]}.npz"
    known: dict[str, tuple[np.ndarray, bool]] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if z["codes"].shape[1] == nbytes:
                for p, c, o in zip(z["paths"], z["codes"], z["ok"], strict=True):
                    known[str(p)] = (c, bool(o))
    todo = [i for i in needed if str(data.paths[i]) not in known]
    errors: list[str] = []
    if todo:
        codes, ok, errors = encode_paths(
            [data.paths[i] for i in todo], encode, nbytes, batch_size, progress
        )
        for i, c, o in zip(todo, codes, ok, strict=True):
            known[str(data.paths[i])] = (c, bool(o))
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                paths=np.array(list(known)),
                codes=np.stack([v[0] for v in known.values()]),
                ok=np.array([v[1] for v in known.values()]),
            )
    codes = np.stack([known[str(data.paths[i])][0] for i in needed]) if len(needed) else None
    ok = np.array([known[str(data.paths[i])][1] for i in needed], dtype=bool)
    if codes is None:
        codes = np.zeros((0, nbytes), dtype=np.uint8)
    return codes, ok, errors


def run_protocol(
    data: ImageFolderData,
    protocol: str,
    encode: Callable[[np.ndarray], np.ndarray],
    model_info: dict,
    out_dir: str | Path,
    queries_per_class: int = 100,
    seed: int = 0,
    database_per_class: int | None = None,
    batch_size: int = 64,
    max_k: int = 1000,
    progress: bool = True,
) -> dict:
    """Encode, score and write ``<protocol>-*.{json,csv,png}`` into ``out_dir``.

    ``model_info`` needs model_id and code_bits (model_name optional). Returns the summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    query_idx, db_idx = split_protocol(data, protocol, queries_per_class, seed, database_per_class)
    code_bits = int(model_info["code_bits"])
    needed = np.concatenate([query_idx, db_idx])
    codes, ok, errors = cached_codes(
        data, needed, encode, str(model_info["model_id"]), code_bits, out, batch_size, progress
    )
    scores = _score(data, query_idx, db_idx, codes, ok, code_bits, max_k)
    split_info = _split_info(
        data, protocol, queries_per_class, seed, database_per_class, ok, len(query_idx)
    )
    summary = {
        **split_info,
        **_model_and_scores(data, model_info, code_bits, scores, max_k),
        "definitions": DEFINITIONS,
        "errors": errors[:20],
    }
    name = protocol if database_per_class is None else f"{protocol}-db{database_per_class}pc"
    write_outputs(out, name, summary, scores)
    return summary


def _score(
    data: ImageFolderData,
    query_idx: np.ndarray,
    db_idx: np.ndarray,
    codes: np.ndarray,
    ok: np.ndarray,
    code_bits: int,
    max_k: int,
) -> metrics.RetrievalScores:
    """Scores over the images that encoded: a failed image is left out, not scored as a miss."""
    q_ok, d_ok = ok[: len(query_idx)], ok[len(query_idx) :]
    q_codes, d_codes = codes[: len(query_idx)][q_ok], codes[len(query_idx) :][d_ok]
    q_labels, d_labels = data.labels[query_idx][q_ok], data.labels[db_idx][d_ok]
    d_ids = [path_key(p, data.root) for p in np.array(data.paths, dtype=object)[db_idx][d_ok]]
    return metrics.evaluate_retrieval(
        q_codes, q_labels, d_codes, d_labels, code_bits, (max_k, None), max_k, d_ids
    )


def _split_info(
    data: ImageFolderData,
    protocol: str,
    queries_per_class: int,
    seed: int,
    database_per_class: int | None,
    ok: np.ndarray,
    n_queries: int,
) -> dict:
    """The protocol and the split sizes actually scored: every output names them."""
    q_ok, d_ok = ok[:n_queries], ok[n_queries:]
    return {
        "protocol": protocol,
        "protocol_description": PROTOCOLS[protocol].description,
        "reduced": database_per_class is not None,
        "database_per_class": database_per_class,
        "queries_per_class": queries_per_class,
        "seed": seed,
        "n_queries": int(q_ok.sum()),
        "n_database": int(d_ok.sum()),
        "n_classes": len(data.classes),
        "failed_images": int((~ok).sum()),
    }


def _model_and_scores(
    data: ImageFolderData,
    model_info: dict,
    code_bits: int,
    scores: metrics.RetrievalScores,
    max_k: int,
) -> dict:
    """The data set, the model and its headline scores, as the summary JSON lists them."""
    return {
        "dataset": str(data.root),
        "classes": data.classes,
        "model_id": model_info["model_id"],
        "model_name": model_info.get("model_name"),
        "code_bits": code_bits,
        f"map@{max_k}": scores.map_at[str(max_k)],
        "map@all": scores.map_at["all"],
        "precision@k": {
            str(k): float(scores.precision_at_k[k - 1])
            for k in (1, 10, 50, 100, 500, 1000)
            if k <= len(scores.precision_at_k)
        },
    }
