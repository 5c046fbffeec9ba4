"""The options of one trial: names, types, defaults and validation.

This is the contract between ``svconv train``, the sweep specs and the results schema: a sweep spec
may set or grid over exactly these fields, and a trial's id is the hash of its canonical config.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

OPTIMIZERS = ("sgd", "sgd-nesterov", "adam")
SCHEDULES = ("multistep", "cosine", "constant", "aol")
DEVICES = ("auto", "cpu", "cuda")
#: Training losses (svconv.training.losses): cross-entropy, AOL's offset cross-entropy (Prach & Lampert 2022).
LOSSES = ("ce", "aol-offset")
#: A sweep name: one folder name, checked whole (``fullmatch``: ``$`` alone would accept a trailing newline).
SWEEP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SWEEP_NAME_RULE = "must be letters, digits, '_', '.' or '-', not starting with '.', '_' or '-' (a folder name)"


@dataclass(frozen=True)
class TrialConfig:
    """One trial. Names of architectures, methods and datasets are checked against their registries."""

    arch: str = "small-cnn"  # svconv.models: small-cnn, lipconvnet-N, wrn-D-W, vgg19, resnet18, aol-*
    dataset: str = "mnist5k"  # svconv.data: mnist5k, cifar10, cifar100, synthetic
    method: str = "none"  # a name of svconv.methods.METHODS (its registry; `svconv train --help` lists them)
    rank: int | None = None  # TT rank of the convs; None: full (no TT)
    clip_to: float = 1.0  # target spectral norm per layer
    clip_to_linear: float | None = None  # division: target of linear layers (None: clip_to)
    clip_to_bn: float | None = None  # division: target (Lipschitz constant) of batch norm (None: clip_to)
    clip_every: int = 1  # control step every this many optimiser steps
    clip_iters: int = 1  # projection steps (fastclip); plain clip passes when clip_tol is 0 (clip)
    clip_tol: float = 0.01  # clip: relative tolerance around clip_to that each control step reaches
    power_iters: int = 1  # warm power iterations per control step (division, fastclip)
    lam: float = 0.0  # coefficient of the orthogonality loss of TT layers
    loss: str = "ce"  # svconv.training.losses.LOSSES: ce, aol-offset (AOL's offset cross-entropy)
    loss_offset: float | None = None  # aol-offset only; None: sqrt(2) (AOL's default)
    loss_temperature: float | None = None  # aol-offset only; None: loss_offset / (4 sqrt(2)), AOL's rescaling
    seed: int = 0
    epochs: int = 1
    batch_size: int = 128
    lr: float | None = None  # None: the arch family's default for the optimizer (svconv.models.default_lr), set on construction
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    amp: bool = True  # mixed precision, CUDA only
    device: str = "auto"
    n_train: int | None = None  # use the first n training images (None: all)
    n_test: int | None = None
    augment: bool = True  # standard CIFAR augmentation (ignored for other datasets)
    aa_n: int = 0  # AutoAttack test images; 0 skips AutoAttack
    aa_radii: str = "36/255,0.5"  # AutoAttack L2 radii in pixel units (svconv.metrics.autoattack.AUTOATTACK_RADII)
    emp_lip_n: int = 256  # test images for the empirical Lipschitz ratio
    bn_concat: bool = False  # fastclip: control conv+BN as one operator
    clip_k: int = 1  # fastclip: top-k singular values clipped per projection step (PowerQR's block size)
    fail_at_epoch: int | None = None  # testing fault tolerance: raise at the start of this epoch
    data_root: str | None = field(default=None, metadata={"id": False})  # where to find CIFAR files

    def __post_init__(self) -> None:
        self._resolve_lr()
        self.validate()

    def _resolve_lr(self) -> None:
        """Replace lr None by the family's default, so that the trial id and every row carry the lr trained at.

        The resolved value is a field like any other: ``dataclasses.replace(config, arch=...)`` keeps it; pass
        ``lr=None`` there to take the new family's."""
        if self.lr is not None or not isinstance(self.arch, str) or self.optimizer not in OPTIMIZERS:
            return
        from svconv.models import default_lr

        try:
            object.__setattr__(self, "lr", default_lr(self.arch, self.optimizer))  # frozen: set once, on construction
        except ValueError:
            pass  # an unknown arch: validate() names it

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed values."""
        from svconv.data import check_dataset
        from svconv.methods import METHODS, check_compatible, check_method
        from svconv.methods.base import check_kind_targets
        from svconv.options import check_unused
        from svconv.models import check_arch

        check_field_types(self)
        check_arch(self.arch)
        check_method(self.method)
        check_unused(self.method, METHODS[self.method].options, self.to_dict())
        check_kind_targets(self.method, METHODS[self.method].kind_targets, clip_to_linear=self.clip_to_linear,
                           clip_to_bn=self.clip_to_bn)  # fmt: skip
        check_dataset(self.dataset)
        check_compatible(self.method, self.arch, self.rank)
        _check_rank_compresses(self.arch, self.rank)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("loss", self.loss, LOSSES)
        if self.loss == "ce" and (self.loss_offset is not None or self.loss_temperature is not None):
            raise ValueError("loss_offset and loss_temperature apply to loss aol-offset only; leave them unset (null) for loss ce")
        _choice("device", self.device, DEVICES)
        from svconv.metrics.autoattack import parse_aa_radii

        parse_aa_radii(self.aa_radii)
        for name in ("clip_every", "clip_iters", "power_iters", "clip_k", "epochs", "batch_size"):
            _positive_int(name, getattr(self, name))
        for name in ("rank", "n_train", "n_test", "fail_at_epoch"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("aa_n", "emp_lip_n", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0; got {getattr(self, name)!r}")
        for name in ("clip_to", "lr", "loss_offset", "loss_temperature"):
            if name.startswith("loss_") and getattr(self, name) is None:
                continue
            if not _is_number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number; got {getattr(self, name)!r}")
        if not _is_number(self.clip_tol) or not 0 <= self.clip_tol < 1:
            raise ValueError(f"clip_tol must be a number in [0, 1); got {self.clip_tol!r}")
        for name in ("lam", "momentum", "weight_decay"):
            if not _is_number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0; got {getattr(self, name)!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a mapping; unknown keys are refused with the list of known ones."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown trial option(s) {unknown}; known options: {', '.join(cls.field_names())}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def method_options(self) -> Any:
        """The options the method trains with: its ``options`` dataclass (``svconv.options``), defaults
        resolved (a per-kind target of None is ``clip_to``)."""
        from svconv.methods import METHODS
        from svconv.options import effective_options

        return effective_options(METHODS[self.method].options, self.to_dict())

    def trial_id(self, sweep: str | None = None) -> str:
        """Deterministic id: hash of the sweep name, the common fields that define the experiment and the
        method's effective options (:meth:`method_options`), so an option the method does not use cannot
        change it."""
        from svconv.options import option_fields

        ident = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("id", True) and f.name not in option_fields()}
        ident.update(dataclasses.asdict(self.method_options()))
        ident["sweep"] = sweep
        from svconv.results.store import config_id  # pandas/pyarrow: not at import, so `svconv --help` stays fast

        return config_id(ident)


def check_sweep_name(name: Any, what: str = "sweep NAME") -> str:
    """``name`` if it is a valid sweep name (:data:`SWEEP_NAME_RE`, whole string), else ValueError naming ``what``."""
    if not isinstance(name, str) or not SWEEP_NAME_RE.fullmatch(name):
        raise ValueError(f"{what} {SWEEP_NAME_RULE}; got {name!r}")
    return name


def check_field_types(config: TrialConfig) -> None:
    """Raise ValueError naming the first field whose value is not of the field's declared type.

    Driven by the dataclass annotations: ``bool`` takes only True/False (a quoted YAML ``"no"`` or
    ``"false"`` is a string, and would be truthy), ``int`` no bool or float, ``float`` a finite int or
    float, ``str`` a string; ``X | None`` also None.
    """
    hints = typing.get_type_hints(TrialConfig)
    for f in fields(config):
        value = getattr(config, f.name)
        args = typing.get_args(hints[f.name])
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hints[f.name]
        if (value is None and optional) or _has_type(value, base):
            continue
        expected = _TYPE_WORDS[base] + (" or null" if optional else "")
        raise ValueError(f"{f.name} must be {expected}; got {value!r} ({type(value).__name__})")


def _check_rank_compresses(arch: str, rank: int | None) -> None:
    """Refuse a TT rank that compresses no layer: the model would be dense and its rows would claim a rank."""
    from svconv.models import tt_rank_limit

    if rank is None or not isinstance(rank, int):
        return
    limit = tt_rank_limit(arch)
    if limit is not None and rank >= limit:
        raise ValueError(
            f"rank must be below {limit} for arch {arch!r}; got {rank}: a layer stays dense where its TT form "
            f"would not have fewer weights, and from rank {limit} on that is every layer "
            "(use rank none for the dense model)"
        )


_TYPE_WORDS = {
    bool: "true or false (a YAML boolean, unquoted: quoted \"no\" or \"false\" is a string)",
    int: "an integer",
    float: "a finite number",
    str: "a string",
}


def _has_type(value: Any, base: type) -> bool:
    if base is bool:
        return isinstance(value, bool)
    if base is float:
        return _is_number(value) and math.isfinite(value)
    return isinstance(value, base) and not isinstance(value, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
