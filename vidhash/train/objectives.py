"""Hash-layer objectives: the paper's point-wise recipe, and one that keeps what the
backbone knows.

Both read the hash layer's sigmoid outputs ``r`` (N, L) and the class logits; codes are
``r >= 0.5`` at inference. Write ``b = 2r - 1`` in (-1, 1): for binary codes,
``b_i . b_j / L = 1 - 2 d_H(i, j) / L``, so inner products of ``b`` stand for Hamming
distances while training.

* ``paper`` (Gkountakos et al., DLBHC): softmax cross-entropy of the class logits on
  the labelled images; nothing else. Codes then only separate the training classes, so
  images of anything else collapse onto them (measured: docs/results/codes.md).
* ``distill`` (vidhash's default): the cross-entropy on whatever labels exist, plus

  - **neighbourhood distillation**: for every image of a batch, the distribution over the
    batch's other images given by the frozen backbone's own similarity (cosine of its
    pooled deep features, temperature ``tau_teacher``) should be what the codes give
    (``b_i . b_j / L``, temperature ``tau_student``): KL(teacher || student) per row, as
    in SEED / CompRess distillation. Nearest neighbours weigh most, which is what a
    top-k search needs, and no labels are involved, so it holds on any image;
  - **quantisation**: ``mean((|b| - 1)^2)``: outputs near 0/1, so thresholding loses
    little;
  - **balance**: each bit's mean over each source (data set) of the batch near 0, so
    bits split every kind of image in two rather than only the pooled mixture.

Phase 1's loss is :class:`SegObjective`: per-pixel NLL, optionally class-weighted by
median frequency (SegNet's balancing, so thin rare classes such as poles count).

Both objectives are parts of a run's configuration (:mod:`vidhash.train.config`): frozen,
their fields are options, and a bad value is a :class:`~vidhash.errors.UsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidhash.errors import UsageError
from vidhash.models.psp import IGNORE_INDEX, segmentation_loss

OBJECTIVES = ("paper", "distill")
CLASS_WEIGHTS = ("none", "median-freq")


@dataclass(frozen=True)
class HashObjective:
    """Weights and temperatures of the loss; ``name`` (option ``objective``) picks the
    recipe; ``teacher``: the backbone levels whose similarities ``distill`` keeps."""

    OPTION_NAMES = {"name": "objective"}
    name: str = "distill"
    w_cls: float = 1.0
    w_sim: float = 1.0
    w_quant: float = 0.1
    w_balance: float = 0.1
    tau_teacher: float = 0.05
    tau_student: float = 0.1
    teacher: str = "s32"

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise UsageError(f"objective must be one of {OBJECTIVES}, got {self.name!r}")

    @property
    def needs_teacher(self) -> bool:
        return self.name == "distill" and self.w_sim > 0

    @property
    def teacher_levels(self) -> list[str]:
        return [t for t in self.teacher.split(",") if t]

    def __call__(
        self,
        r: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        teacher: torch.Tensor | None = None,
        domains: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts. ``labels`` < 0 marks an unlabelled image."""
        labelled = labels >= 0
        parts: dict[str, torch.Tensor] = {}
        if labelled.any() and (self.name == "paper" or self.w_cls > 0):
            parts["cls"] = F.cross_entropy(logits[labelled].float(), labels[labelled])
        if self.name == "distill":
            b = 2.0 * r.float() - 1.0
            if self.needs_teacher and teacher is not None and len(b) > 2:
                parts["sim"] = neighbourhood_kl(b, teacher, self.tau_teacher, self.tau_student)
            parts["quant"] = ((b.abs() - 1.0) ** 2).mean()
            parts["balance"] = balance(b, domains)
        weights = {"cls": self.w_cls if self.name == "distill" else 1.0, "sim": self.w_sim,
                   "quant": self.w_quant, "balance": self.w_balance}  # fmt: skip
        total = sum((weights[k] * v for k, v in parts.items()), r.new_zeros(()))
        return total, {k: float(v.detach()) for k, v in parts.items()}


def neighbourhood_kl(
    b: torch.Tensor, teacher: torch.Tensor, tau_teacher: float, tau_student: float
) -> torch.Tensor:
    """Mean over rows of KL(softmax(teacher sims / tau_t) || softmax(code sims / tau_s)),
    each row over the batch's *other* images (the diagonal is masked)."""
    t = F.normalize(teacher.float(), dim=1)
    eye = torch.eye(len(b), dtype=torch.bool, device=b.device)
    target = F.softmax((t @ t.T).masked_fill(eye, -1e4) / tau_teacher, dim=1)
    code_sims = (b @ b.T) / b.shape[1]
    log_student = F.log_softmax(code_sims.masked_fill(eye, -1e4) / tau_student, dim=1)
    return F.kl_div(log_student, target, reduction="batchmean")


def balance(b: torch.Tensor, domains: torch.Tensor | None = None) -> torch.Tensor:
    """Squared mean of each bit, per domain (each source data set) present in the batch."""
    if domains is None:
        return (b.mean(0) ** 2).mean()
    terms = [(b[domains == d].mean(0) ** 2).mean() for d in domains.unique()]
    return torch.stack(terms).mean()


@dataclass(frozen=True)
class SegObjective:
    """Phase 1's loss: NLL of the per-pixel log-probabilities, pixels labelled 255 ignored,
    classes weighted by ``class_weights`` (computed once from the training masks)."""

    class_weights: str = "none"

    def __post_init__(self) -> None:
        if self.class_weights not in CLASS_WEIGHTS:
            raise UsageError(
                f"class_weights must be one of {CLASS_WEIGHTS}, got {self.class_weights!r}"
            )

    def weights(self, masks: np.ndarray, n_classes: int) -> np.ndarray | None:
        """The per-class weights for training masks ``masks`` (None: all equal)."""
        if self.class_weights == "median-freq":
            return median_frequency_weights(masks, n_classes)
        return None

    def __call__(
        self, log_probs: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        return segmentation_loss(log_probs.float(), masks, weights)


def median_frequency_weights(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """SegNet's class balancing: median(freq) / freq(c), where freq(c) is c's pixel share
    in the images that contain c; classes absent from ``masks`` get weight 0."""
    counts = np.zeros(n_classes)
    present_in = np.zeros(n_classes)
    for mask in masks:
        c = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
        counts += c
        present_in += (c > 0) * mask.size
    seen = counts > 0
    freq = np.divide(counts, present_in, out=np.zeros(n_classes), where=present_in > 0)
    weights = np.zeros(n_classes)
    weights[seen] = np.median(freq[seen]) / freq[seen]
    return weights.astype(np.float32)
