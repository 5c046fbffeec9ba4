"""The options of each SV-control method: one frozen dataclass per set of options, help in ``field(metadata=...)``.

A method declares the dataclass of the options it takes (``SVMethod.options``); ``TrialConfig`` keeps the
user-facing flat spelling (``clip_tol: 0.05`` in a spec, ``--clip-tol`` on the command line) and hands the
method exactly its own options (:func:`effective_options`). An option set for a method that does not take it
is refused, naming the method's options (:func:`check_unused`), and a trial's id hashes the effective options
only, so an option the method ignores cannot change it.

This module imports no torch: ``svconv --help``, the results schema and config validation read it.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


_CLIP_ITERS = "projection steps per control step (fastclip); plain clip passes when --clip-tol is 0 (clip)"
_POWER_ITERS = "warm power iterations per control step (division, fastclip)"


@dataclass(frozen=True)
class NoOptions:
    """Methods whose layers are the control (aol, soc, the peers' layers) and ``none``: no option."""


@dataclass(frozen=True)
class TargetOptions:
    """A target norm, reached by a control step every ``clip_every`` optimiser steps (gram, rescale)."""

    clip_to: float = _opt(1.0, "target spectral norm of every controlled layer")
    clip_every: int = _opt(1, "run the control step every this many optimiser steps")


@dataclass(frozen=True)
class ClipOptions(TargetOptions):
    """Exact clipping (``clip``)."""

    clip_iters: int = _opt(1, _CLIP_ITERS)
    clip_tol: float = _opt(
        0.01,
        "clip: each control step clips until the true norm is within this relative tolerance of --clip-to "
        "(svconv.spectrum.clip_to_target, the clip level carried over between steps); 0: --clip-iters plain passes",
    )


@dataclass(frozen=True)
class DivisionOptions(TargetOptions):
    """Division by a power-iteration estimate, with per-kind targets (``division``, Gouk et al. 2021)."""

    clip_to_linear: float | None = _opt(None, "division: target of the linear layers; none: --clip-to")
    clip_to_bn: float | None = _opt(None, "division: target Lipschitz constant of the batch norms; none: --clip-to")
    power_iters: int = _opt(1, _POWER_ITERS)


@dataclass(frozen=True)
class FastClipBNOptions(TargetOptions):
    """FastClip's projection steps on the top-k singular values (``fastclip-clipbn``)."""

    clip_iters: int = _opt(1, _CLIP_ITERS)
    power_iters: int = _opt(1, _POWER_ITERS)
    clip_k: int = _opt(1, "fastclip: the top-k singular values clipped by each projection step (PowerQR's block size)")


@dataclass(frozen=True)
class FastClipOptions(FastClipBNOptions):
    """FastClip, optionally on conv+BN as one operator (``fastclip``)."""

    bn_concat: bool = _opt(False, "fastclip: control each conv together with the batch norm after it (FastClip-concat)")


#: every options dataclass, for what is derived from all of them (CLI options, trials columns)
OPTION_CLASSES: tuple[type, ...] = (NoOptions, TargetOptions, ClipOptions, DivisionOptions, FastClipBNOptions, FastClipOptions)


def option_fields() -> dict[str, Any]:
    """``{name: dataclasses.Field}`` of every method option of every options class, in declaration order."""
    out: dict[str, Any] = {}
    for cls in OPTION_CLASSES:
        for f in fields(cls):
            out.setdefault(f.name, f)
    return out


def option_help() -> dict[str, str]:
    """``{option: help text}`` from the fields' metadata."""
    return {name: f.metadata["help"] for name, f in option_fields().items()}


def option_names(options: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(options))


def check_unused(method: str, options: type, values: Mapping[str, Any]) -> None:
    """ValueError naming every method option in ``values`` that differs from its default although ``method``
    (whose options dataclass is ``options``) does not take it, with the list of what the method takes."""
    taken = set(option_names(options))
    known = option_fields()
    unused = [n for n, v in values.items() if n in known and n not in taken and v != _default(known[n])]
    if unused:
        takes = ", ".join(option_names(options)) or "no option"
        raise ValueError(
            f"{', '.join(unused)}: not used by method {method!r}, leave {'it' if len(unused) == 1 else 'them'} unset; "
            f"method {method!r} takes {takes}"
        )


def effective_options(options: type, values: Mapping[str, Any]) -> Any:
    """The ``options`` instance from ``values`` (missing ones at their defaults), per-kind targets resolved:
    a ``clip_to_linear``/``clip_to_bn`` of None is ``clip_to``."""
    kwargs = {n: values[n] for n in option_names(options) if n in values}
    for name in ("clip_to_linear", "clip_to_bn"):
        if name in option_names(options) and kwargs.get(name) is None:
            kwargs[name] = kwargs.get("clip_to", _default(option_fields()["clip_to"]))
    return options(**kwargs)


def _default(f: Any) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()
