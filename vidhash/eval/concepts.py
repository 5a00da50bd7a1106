"""Per-concept MAP@K over an annotated keyframe index (the paper's Tables II/III).

Protocol (also written into every report, see ``DEFINITIONS``):

* **Queries**: every annotated keyframe, or a given list of keyframe ids.
* **Candidates**: every other keyframe of the index. The query itself is never a candidate.
  With ``exclude_same_video=True`` (the default) no keyframe of the query's own video is a
  candidate either: consecutive keyframes of one shot are near-duplicates that sit at
  Hamming distance 0-2 from the query and share its labels, so they would fill the top of
  every list and measure shot continuity rather than semantic retrieval. A still image is a
  one-keyframe video, so for stills only the query itself is removed.
* **Ranking**: exact Hamming distance, ties broken by keyframe id: the paper's protocol,
  codes only (``vidhash search --codes-only``). With ``rerank`` (``vidhash evaluate
  --rerank``) the ranking is two-stage search's: the Hamming top-R candidates (R =
  ``candidates``) re-ranked by the stored descriptors' cosine, then the rest by Hamming.
* **Relevance**: a candidate is relevant to a query *for concept c* when it is annotated
  with c. A multi-label query counts once for each of its concepts, judged per concept.
  Unannotated keyframes are never relevant but still occupy ranks, so unlabelled clutter
  in the index lowers precision just as it would for a user.
* **AP@K** as in DLBHC (``vidhash.metrics``): normalised by the relevant items found in
  the top K; 0 when none is found.
* **MAP@K of a concept**: mean AP@K over that concept's queries. **Overall** for a group:
  mean over its concepts, each weighted equally (as in the paper), however many queries
  each has.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vidhash import metrics
from vidhash.errors import IndexMissingError, InputError, UsageError
from vidhash.index.store.codes import unpack_bits
from vidhash.index.store.store import IndexTables

DEFINITIONS = (__doc__ or "").split("``DEFINITIONS``):", 1)[-1].strip()


@dataclass
class IndexData:
    """The parts of an index that evaluation reads, keyframes sorted by keyframe id."""

    path: Path
    keyframes: pd.DataFrame
    codes: np.ndarray  # (N, nbytes) uint8, rows aligned with ``keyframes``
    code_bits: int
    meta: dict
    annotations: pd.DataFrame  # keyframe_id, concept, group
    descriptors: np.ndarray | None = None  # (N, D) float32 unit vectors, or None

    @property
    def model_label(self) -> str:
        """Model name and a short id, for report headers."""
        name = self.meta.get("model_name") or "model"
        model_id = str(self.meta.get("model_id") or "")[:12]
        return f"{name} ({model_id})" if model_id else str(name)


def load_index(path: str | Path, require_annotations: bool = True) -> IndexData:
    """Read the committed keyframes, codes, meta and annotations of an index.

    Goes through ``IndexTables`` so keyframes of an interrupted write are never scored.
    Raises ``IndexMissingError`` when ``path`` is not an index and ``InputError`` when it
    has no annotations (``vidhash annotate`` adds them).
    """
    path = Path(path)
    store = IndexTables.open(path)
    keyframes = store.read_table("keyframes")
    if len(keyframes) == 0:
        raise IndexMissingError(f"index has no keyframes: {path}")
    keyframes = keyframes.sort_values("keyframe_id", kind="stable").reset_index(drop=True)
    if keyframes["keyframe_id"].duplicated().any():
        raise IndexMissingError(f"index has duplicate keyframe ids: {path}")
    meta = dict(store.meta or {})
    codes = np.frombuffer(b"".join(keyframes["code"].map(bytes)), dtype=np.uint8)
    codes = codes.reshape(len(keyframes), -1)
    code_bits = int(keyframes["code_bits"].iloc[0])
    descriptors = None
    if "descriptor" in keyframes:
        raw = np.frombuffer(b"".join(keyframes["descriptor"].map(bytes)), dtype="<f2")
        descriptors = raw.reshape(len(keyframes), -1).astype(np.float32)
    annotations = store.read_table("annotations")
    annotations = annotations[["keyframe_id", "concept", "group"]].drop_duplicates()
    # Labels of keyframes no longer in the index (a video was dropped) cannot be scored.
    annotations = annotations[annotations["keyframe_id"].isin(set(keyframes["keyframe_id"]))]
    if len(annotations) == 0 and require_annotations:
        raise InputError(
            f"index has no annotations: {path} (add concept labels with "
            "`vidhash annotate INDEX --labels FILE.csv`)"
        )
    annotations = annotations.reset_index(drop=True)
    return IndexData(path, keyframes, codes, code_bits, meta, annotations, descriptors)


def check_comparable(a: IndexData, b: IndexData) -> None:
    """Two indexes can be compared only over the same keyframes and the same labels."""
    ids_a, ids_b = set(a.keyframes["keyframe_id"]), set(b.keyframes["keyframe_id"])
    if ids_a != ids_b:
        only_a, only_b = len(ids_a - ids_b), len(ids_b - ids_a)
        raise UsageError(
            f"--compare: the indexes hold different keyframes ({only_a} only in {a.path}, "
            f"{only_b} only in {b.path}); index the same videos with both models"
        )

    def label_set(d: IndexData) -> set[tuple[str, str, str]]:
        return set(map(tuple, d.annotations[["keyframe_id", "group", "concept"]].values))

    la, lb = label_set(a), label_set(b)
    if la != lb:
        raise UsageError(
            f"--compare: the indexes' annotations differ ({len(la - lb)} labels only in "
            f"{a.path}, {len(lb - la)} only in {b.path}); annotate both with the same CSV"
        )


def read_query_list(path: str | Path) -> list[str]:
    """Keyframe ids, one per line, or a CSV with a ``keyframe_id`` column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"query list not found: {path}")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if lines and lines[0].split(",")[0].strip() == "keyframe_id":
        return [str(x) for x in pd.read_csv(path)["keyframe_id"].dropna()]
    if not lines:
        raise InputError(f"query list is empty: {path}")
    return lines


@dataclass
class ConceptEvaluation:
    """Scores of one index: per concept, per query, and the rankings behind them."""

    topks: list[int]
    table: pd.DataFrame  # group, concept, n_queries, n_labelled, map@K...
    per_query: pd.DataFrame  # keyframe_id, group, concept, ap@K...
    query_ids: list[str]
    rankings: np.ndarray  # (Q, max K) row indices into index.keyframes, -1 where empty
    distances: np.ndarray  # (Q, max K)
    settings: dict = field(default_factory=dict)

    def overall(self) -> pd.DataFrame:
        """Per group: the mean over its concepts (equal weights) of each MAP@K."""
        cols = [f"map@{k}" for k in self.topks]
        scored = self.table.dropna(subset=cols)
        return scored.groupby("group", sort=True)[cols].mean().reset_index()


def evaluate_concepts(
    index: IndexData,
    topks: list[int] | tuple[int, ...] = (10, 50),
    queries: list[str] | None = None,
    exclude_same_video: bool = True,
    block: int | None = None,
    distance: Callable[[np.ndarray], np.ndarray] | None = None,
    rerank: bool = False,
    candidates: int | None = None,
) -> ConceptEvaluation:
    """Per-concept MAP@K of ``index`` under the protocol in the module docstring.

    ``distance(query_rows) -> (Q, N) int`` replaces the Hamming distance of the codes,
    so the same protocol scores anchors that are not codes (e.g. float features ranked
    by quantised cosine distance, in ``benchmarks/codes.py``). ``rerank``: two-stage
    search's ranking (``candidates`` Hamming candidates, default
    ``vidhash.index.search.index.RERANK_CANDIDATES``); an index without descriptors is a
    :class:`UsageError`.
    """
    topks, candidates = _checked_options(index, topks, rerank, candidates)
    kf = index.keyframes
    row_of = {kid: i for i, kid in enumerate(kf["keyframe_id"])}
    concepts, labels = _label_matrix(index, row_of)
    query_rows = _query_rows(kf, row_of, labels, queries)
    scorer = _BlockScorer(
        index, concepts, labels, _video_codes(kf), topks, exclude_same_video,
        distance=distance, rerank=rerank, candidates=candidates,
    )  # fmt: skip
    rankings, distances, per_query = scorer.score(query_rows, block or metrics.query_block(len(kf)))
    return ConceptEvaluation(
        topks=topks,
        table=_concept_table(concepts, per_query, labels, topks),
        per_query=per_query,
        query_ids=[kf["keyframe_id"].iat[r] for r in query_rows],
        rankings=rankings,
        distances=distances,
        settings=_settings(index, len(query_rows), topks, exclude_same_video, rerank, candidates),
    )


def _checked_options(
    index: IndexData, topks: list[int] | tuple[int, ...], rerank: bool, candidates: int | None
) -> tuple[list[int], int]:
    """Refuse what cannot be scored before any work: (sorted distinct K, rerank candidates)."""
    if rerank and index.descriptors is None:
        from vidhash.index.search.index import NO_DESCRIPTORS

        raise UsageError(f"--rerank: {index.path}: {NO_DESCRIPTORS}")
    if candidates is None:
        from vidhash.index.search.index import RERANK_CANDIDATES

        candidates = RERANK_CANDIDATES
    topks = sorted(set(int(k) for k in topks))
    if not topks or topks[0] <= 0:
        raise UsageError(f"--topk values must be positive integers, got {topks}")
    return topks, candidates


def _label_matrix(
    index: IndexData, row_of: dict[str, int]
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(sorted (group, concept) pairs, (N, C) bool labels): relevance as an array, so a
    block of queries is judged against every candidate at once."""
    concepts = sorted(set(map(tuple, index.annotations[["group", "concept"]].values)))
    col_of = {c: j for j, c in enumerate(concepts)}
    labels = np.zeros((len(index.keyframes), len(concepts)), dtype=bool)
    ann = index.annotations
    labels[
        ann["keyframe_id"].map(row_of).to_numpy(),
        [col_of[(g, c)] for g, c in zip(ann["group"], ann["concept"], strict=True)],
    ] = True
    return concepts, labels


def _query_rows(
    kf: pd.DataFrame, row_of: dict[str, int], labels: np.ndarray, queries: list[str] | None
) -> np.ndarray:
    """Rows of the queries: every labelled keyframe, or the given ids (each must be in the
    index and labelled, or its AP would be undefined)."""
    if queries is None:
        return np.flatnonzero(labels.any(1))
    unknown = [q for q in queries if q not in row_of]
    if unknown:
        raise InputError(f"{len(unknown)} query keyframe ids are not in the index: {unknown[:5]}")
    query_rows = np.array([row_of[q] for q in dict.fromkeys(queries)], dtype=np.int64)
    unlabelled = [kf["keyframe_id"].iat[r] for r in query_rows if not labels[r].any()]
    if unlabelled:
        raise InputError(
            f"{len(unlabelled)} queries have no concept annotation and cannot be scored: "
            f"{unlabelled[:5]}"
        )
    return query_rows


def _video_codes(kf: pd.DataFrame) -> np.ndarray:
    """One integer per video (per keyframe for an index without video ids), to exclude a
    query's own video cheaply."""
    video = kf["video_id"].astype(str).to_numpy() if "video_id" in kf else kf["keyframe_id"]
    return pd.factorize(np.asarray(video))[0]


@dataclass
class _BlockScorer:
    """Ranks and scores queries a block at a time, so memory stays (block x N)."""

    index: IndexData
    concepts: list[tuple[str, str]]
    labels: np.ndarray  # (N, C) bool
    video_codes: np.ndarray  # (N,)
    topks: list[int]
    exclude_same_video: bool
    distance: Callable[[np.ndarray], np.ndarray] | None
    rerank: bool
    candidates: int

    @property
    def max_k(self) -> int:
        """The longest ranking kept: the largest K, or every keyframe in a smaller index."""
        return min(self.topks[-1], len(self.labels))

    def score(
        self, query_rows: np.ndarray, block: int
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(rankings, distances, per-query AP table) of all queries."""
        rankings = np.full((len(query_rows), self.max_k), -1, dtype=np.int64)
        distances = np.full((len(query_rows), self.max_k), -1, dtype=np.int32)
        rows: list[dict] = []
        for start in range(0, len(query_rows), block):
            qr = query_rows[start : start + block]
            dist, order, valid = self._rank(qr)
            rankings[start : start + len(qr)] = np.where(valid, order, -1)
            distances[start : start + len(qr)] = np.where(
                valid, np.take_along_axis(dist, order, 1), -1
            )
            rows += self._ap_rows(qr, order, valid)
        columns = ["keyframe_id", "group", "concept", *[f"ap@{k}" for k in self.topks]]
        return rankings, distances, pd.DataFrame(rows, columns=columns)

    def _rank(self, qr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distances, top-K order, valid mask) of one block, excluded candidates removed."""
        index = self.index
        dist = (
            self.distance(qr)
            if self.distance is not None
            else metrics.hamming(index.codes[qr][:, None], index.codes, index.code_bits)
        )
        if self.exclude_same_video:
            exclude = self.video_codes[qr][:, None] == self.video_codes[None, :]
        else:
            exclude = np.zeros_like(dist, dtype=bool)
        exclude[np.arange(len(qr)), qr] = True
        key = dist
        if self.rerank:
            scores = metrics.cosine(index.descriptors[qr], index.descriptors)
            # As search: at least the k asked for are candidates.
            key = metrics.two_stage_keys(dist, scores, max(self.candidates, self.max_k), exclude)
        # The tie rule: the database's order, which is keyframe id order (IndexData is sorted).
        order, valid = metrics.rank_by_distance(key, None, self.max_k, exclude)
        return dist, order, valid

    def _ap_rows(self, qr: np.ndarray, order: np.ndarray, valid: np.ndarray) -> list[dict]:
        """One row of AP@K per (query, concept) label: a multi-label query counts per concept."""
        kf = self.index.keyframes
        ranked_labels = self.labels[order] & valid[:, :, None]  # (B, K, C)
        q_local, c_idx = np.nonzero(self.labels[qr])  # one (query, concept) pair per label
        rel = ranked_labels[q_local, :, c_idx]  # (P, K)
        aps = {k: metrics.average_precision_batch(rel[:, :k]) for k in self.topks}
        rows = []
        for p, (ql, cj) in enumerate(zip(q_local, c_idx, strict=True)):
            group, concept = self.concepts[cj]
            row = {"keyframe_id": kf["keyframe_id"].iat[qr[ql]], "group": group}
            row["concept"] = concept
            row.update({f"ap@{k}": float(aps[k][p]) for k in self.topks})
            rows.append(row)
        return rows


def _concept_table(
    concepts: list[tuple[str, str]], per_query: pd.DataFrame, labels: np.ndarray, topks: list[int]
) -> pd.DataFrame:
    """Per concept: queries, labelled keyframes and MAP@K (NaN for a concept with no query)."""
    table = pd.DataFrame(concepts, columns=["group", "concept"])
    table["n_queries"] = (
        per_query.groupby(["group", "concept"]).size().reindex(concepts, fill_value=0).to_numpy()
    )
    table["n_labelled"] = labels.sum(0)
    for k in topks:
        means = per_query.groupby(["group", "concept"])[f"ap@{k}"].mean()
        table[f"map@{k}"] = means.reindex(concepts).to_numpy()
    return table


def _settings(
    index: IndexData,
    n_queries: int,
    topks: list[int],
    exclude_same_video: bool,
    rerank: bool,
    candidates: int,
) -> dict:
    """What a report must say to be reproducible: index, model, protocol and code spread."""
    return {
        "index": str(index.path),
        "model": index.model_label,
        "model_id": index.meta.get("model_id"),
        "code_bits": index.code_bits,
        "keyframes": len(index.keyframes),
        "queries": n_queries,
        "topk": topks,
        "exclude_same_video": exclude_same_video,
        "protocol": (
            f"two-stage: Hamming top-{candidates} re-ranked by descriptor cosine"
            if rerank
            else "codes only: Hamming distance, ties by keyframe id (the paper's)"
        ),
        "model_config": _json_or_none(index.meta.get("model_config")),
        "code_stats": code_stats(index.codes, index.code_bits),
    }


def code_stats(codes: np.ndarray, code_bits: int) -> dict:
    """How spread the codes are: many keyframes sharing one code means many rank ties,
    broken only by keyframe id, so MAP then says little about the model."""
    if len(codes) == 0:
        return {"distinct_codes": 0, "largest_bucket": 0, "mean_bit_imbalance": 0.0}
    _, counts = np.unique(codes, axis=0, return_counts=True)
    bits = unpack_bits(codes, code_bits)
    return {
        "distinct_codes": int(len(counts)),
        "largest_bucket": int(counts.max()),
        "mean_bit_imbalance": round(float(np.abs(bits.mean(0) - 0.5).mean()), 4),
    }


def _json_or_none(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
