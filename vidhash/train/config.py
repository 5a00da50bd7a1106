"""A training run's configuration, in parts: data, head, objective, schedule, runtime.

Each part is a small frozen dataclass and the one home of its defaults and its checks: a
bad value raises :class:`~vidhash.errors.UsageError` naming the *option* (``epochs must be
positive``), never a CLI flag, so the library and the CLI say the same thing.

* data: what is read: :class:`HashData`, :class:`SegData` (sources, pool, views, cache);
* head: what is built and what stays frozen: :class:`HashHead`, :class:`SegHead`;
* objective: the loss: :class:`~vidhash.train.objectives.HashObjective` (its weights and
  teacher), :class:`~vidhash.train.objectives.SegObjective` (its class weights);
* :class:`Schedule`: optimizer, learning rate and its one step, epochs, batch size;
* :class:`Runtime`: device, threads, seed.

A phase's whole run (:class:`~vidhash.train.hashing.HashConfig`,
:class:`~vidhash.train.seg.SegConfig`) joins its parts with the output path.

**Options.** Every field is an option of the same name (``OPTION_NAMES`` renames the few
that read better otherwise inside their part: ``HashObjective.name`` is ``objective``);
:func:`take` hands each flat option (the CLI's, or a header's ``train`` record) to its
part, and :func:`flat` gives them back. The CLI declares its options from these fields
(``vidhash/cli/_train.py``), so its defaults and choices are these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from vidhash.errors import UsageError
from vidhash.models.header import CODE_LENGTHS, HEAD_INPUTS

OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda")
HASH_ARCHS = ("psp", "baseline")
INITS = ("random", "itq")
DEFAULT_CACHE_DIR = "~/.cache/vidhash/features"
DEFAULT_NECK = "s8:64,s16:128,head:256"


def check(ok: object, message: str) -> None:
    """Raise the one-line :class:`UsageError` ``message`` unless ``ok``."""
    if not ok:
        raise UsageError(message)


def _strings(value: str | Iterable | None) -> tuple[str, ...]:
    """One path or several, as a tuple of strings (frozen, and JSON-able in a header)."""
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def option_names(part: type) -> dict[str, str]:
    """Field name -> option name for ``part`` (the same, but for its ``OPTION_NAMES``)."""
    renamed = getattr(part, "OPTION_NAMES", {})
    return {f.name: renamed.get(f.name, f.name) for f in fields(part)}


def default_of(part: type, option: str) -> Any:
    """The default of ``part``'s option ``option`` (what ``--help`` shows)."""
    name = {o: n for n, o in option_names(part).items()}[option]
    f = next(f for f in fields(part) if f.name == name)
    if f.default is not MISSING:
        return f.default
    return None if f.default_factory is MISSING else f.default_factory()


def take(part: type, options: dict[str, Any]) -> Any:
    """``part`` built from the options among ``options`` that are its fields (removed
    from ``options``, so what is left belongs to other parts)."""
    kwargs = {name: options.pop(opt) for name, opt in option_names(part).items() if opt in options}
    return part(**kwargs)


def flat(*parts: object) -> dict[str, Any]:
    """Every option of ``parts`` by its option name: the inverse of :func:`take`."""
    return {
        opt: getattr(part, name) for part in parts for name, opt in option_names(type(part)).items()
    }


def ordered(values: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``values`` in the key order of a released header record (its JSON reads the same)."""
    differ = set(keys) ^ set(values)
    if differ:
        raise ValueError(f"record keys differ: {sorted(differ)}")
    return {k: values[k] for k in keys}


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """How the trainable weights move: ``lr`` for epochs 1..drop_after, then ``lr_after``
    (the paper's one step). The defaults are train-seg's (the paper's phase 1); train-hash
    takes its objective's :data:`RECIPES`."""

    optimizer: str = "sgd"
    epochs: int = 30
    lr: float = 1e-3
    lr_after: float = 1e-4
    drop_after: int = 20
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 32

    def __post_init__(self) -> None:
        check(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}",
        )
        check(self.epochs >= 1, "epochs must be positive")
        check(self.batch_size >= 1, "batch size must be positive")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (1-based) ``epoch``."""
        return self.lr if epoch <= self.drop_after else self.lr_after


# train-hash's schedule per objective, where its options leave one unset.
RECIPES: dict[str, Schedule] = {
    "paper": Schedule(optimizer="sgd", lr=1e-3, lr_after=1e-4, drop_after=20, epochs=30,
                      batch_size=96, weight_decay=5e-4),
    "distill": Schedule(optimizer="adam", lr=1e-3, lr_after=1e-4, drop_after=30, epochs=40,
                        batch_size=256, weight_decay=1e-5),
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where and how a run executes; nothing here changes what it computes on one device
    with one thread count (``threads``: torch's intra-op threads, None = its default)."""

    device: str = "auto"
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        check(
            self.device.split(":")[0] in DEVICES,
            f"device must be one of {DEVICES}, got {self.device!r}",
        )
        check(self.threads is None or self.threads >= 1, "threads must be positive")


@dataclass(frozen=True, kw_only=True)
class Crops:
    """What both phases' data share: ``views`` crops per image at ``size``, and where the
    frozen backbone's maps of them are cached."""

    views: int = 1
    size: int = 224
    cache_dir: str = DEFAULT_CACHE_DIR

    def __post_init__(self) -> None:
        check(self.views >= 1, "views must be positive")
        check(self.size >= 1, "size must be positive")


@dataclass(frozen=True, kw_only=True)
class HashData(Crops):
    """Phase 2's images: labelled ImageFolder roots (one label space; the first is the
    report's database), the test queries and unlabelled pools (photos, video frames)."""

    train_dir: tuple[str, ...]
    test_dir: str | None = None
    unlabelled: tuple[str, ...] = ()
    unlabelled_every: float = 1.0
    train_per_class: int | None = None
    test_per_class: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "train_dir", _strings(self.train_dir))
        object.__setattr__(self, "unlabelled", _strings(self.unlabelled))
        if self.test_dir is not None:
            object.__setattr__(self, "test_dir", str(self.test_dir))
        check(self.train_dir, "train_dir needs at least one labelled image folder")
        check(self.unlabelled_every > 0, "unlabelled_every must be positive")


@dataclass(frozen=True, kw_only=True)
class SegData(Crops):
    """Phase 1's images: VOC-layout roots (several: one merged label list)."""

    OPTION_NAMES = {"roots": "data"}
    roots: tuple[str, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "roots", _strings(self.roots))
        check(self.roots, "data needs at least one VOC-layout root")


@dataclass(frozen=True, kw_only=True)
class BackboneChoice:
    """The backbone both heads read (a registered name, weights 'default', 'none' or a
    state-dict path) and whether it trains."""

    backbone: str = "efficientnet_lite0_ms"
    backbone_weights: str = "default"
    freeze_backbone: bool = True


@dataclass(frozen=True, kw_only=True)
class HashHead(BackboneChoice):
    """Phase 2's network: the proposed PSP net (reading a train-seg checkpoint's backbone,
    neck and PSP) or the DLBHC baseline, its FC stack and code, and what stays frozen."""

    arch: str = "psp"
    bits: int = 48
    seg_checkpoint: str | None = None
    levels: str = ""  # backbone levels the head reads (baseline: "" = the neck's; psp: beside)
    width: int = 4096
    head_input: str = "stacked"
    pool: int = 4
    init: str = "random"  # or "itq": the head starts as the PCA-ITQ code of its input
    freeze_psp: bool = True

    def __post_init__(self) -> None:
        check(self.arch in HASH_ARCHS, f"arch must be one of {HASH_ARCHS}, got {self.arch!r}")
        check(self.bits in CODE_LENGTHS, f"bits must be one of {CODE_LENGTHS}")
        check(
            self.arch != "psp" or self.seg_checkpoint,
            "arch psp needs seg_checkpoint (a train-seg checkpoint)",
        )
        check(self.width >= 1, "width must be positive")
        check(self.pool >= 1, "pool must be positive")
        check(
            self.head_input in HEAD_INPUTS,
            f"head_input must be one of {HEAD_INPUTS}, got {self.head_input!r}",
        )
        check(self.init in INITS, f"init must be one of {INITS}, got {self.init!r}")
        check(
            not (self.arch == "psp" and self.freeze_psp and not self.freeze_backbone),
            "a frozen PSP needs a frozen backbone (the PSP reads its maps)",
        )
        check(
            self.init != "itq" or (self.freeze_backbone and self.freeze_psp),
            "init itq fits the head's input: it needs a frozen backbone and PSP",
        )

    def level_list(self) -> list[str]:
        return [x for x in self.levels.split(",") if x]


def parse_neck(spec: str) -> dict[str, int] | None:
    """``"s8:64,s16:128,head:256"`` -> {"s8": 64, ...}; ``""`` or ``"none"`` -> None."""
    if spec in ("", "none"):
        return None
    try:
        levels = {name: int(ch) for name, ch in (part.split(":") for part in spec.split(","))}
    except ValueError:
        raise UsageError(f"neck must look like s8:64,s16:128,head:256, got {spec!r}") from None
    if sum(levels.values()) % 4 or min(levels.values()) < 1:
        raise UsageError(f"neck channels must be positive and sum to a multiple of 4: {spec}")
    return levels


@dataclass(frozen=True, kw_only=True)
class SegHead(BackboneChoice):
    """Phase 1's network: backbone -> neck (multi-scale backbones) -> PSP -> segmentation
    head, optionally joined by a finer ``detail`` level."""

    neck: str = DEFAULT_NECK
    detail: str = ""  # a finer backbone level for the segmentation head (e.g. "s4")
    decoder_channels: int = 128

    def __post_init__(self) -> None:
        parse_neck(self.neck)
        check(self.decoder_channels >= 1, "decoder_channels must be positive")

    def layout(self, multi_scale: bool) -> tuple[dict[str, int] | None, str | None]:
        """(neck levels, detail level) for a backbone: none for a single-map one."""
        if not multi_scale:
            return None, None
        return parse_neck(self.neck), self.detail or None
