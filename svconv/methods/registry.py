"""The one registry of SV-control methods and spectral-norm estimators.

Each module of ``svconv.methods`` registers its entries explicitly, ``register(Cls)`` at its end, and
``svconv/methods/__init__.py`` imports those modules by name: an entry is a :class:`Registered` subclass
(an ``SVMethod`` to train with, or an :class:`Estimator` that only ``svconv bench`` measures); it declares
what the CLI help, config validation, the bench grid and the FLOP counts need, so adding a method is one
module, its line in the package's imports, and its test. Tools outside the core add their own entries with
:func:`register` (``bench.baselines`` does, for its reference formulas).

What an entry declares (class attributes and class methods):

- ``name``, ``summary`` (one line, for ``svconv train --help``), ``order`` (position in listings);
- ``default_iters`` (bench ``iters`` when not given; None: the method has no iteration count),
  ``min_iters``, ``takes_k`` (PowerQR's number of singular values);
- ``bench_layer``: what a bench row of one layer is: ``exact`` | ``baseline`` | ``bound`` |
  ``estimate`` (``layer_value`` gives the spectral-norm value) or ``control`` (``layer_control`` edits
  the layer in place and returns a ``svconv.control.ControlResult``); None: not measured per layer;
- ``bench_model``: ``exact`` (``layer_value`` over the conv/TT layers) | ``control`` (one control step
  of the ``SVMethod`` from ``bench_method``) | ``forward`` (SOC); None: not measured per model;
- ``flops(c_out, c_in, kernel, size, stride, iters, k)``: leading-order FLOPs of one call on one layer
  (``size``: the periodic grid when ``flops_on_grid``, else the input size), None without a closed form;
  ``orthogonalises``: TT layers add the frame orthogonalisation to that count;
- ``bench_skip(padding, tt, ndim)``: why a layer geometry cannot run, or None.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

LAYER_KINDS = ("exact", "baseline", "bound", "estimate", "control")
MODEL_KINDS = ("exact", "control", "forward")

_ENTRIES: dict[str, type["Registered"]] = {}


class Registered:
    """What every registry entry declares (see the module docstring); the defaults are 'not applicable'."""

    name = ""
    summary = ""
    order = 50
    default_iters: int | None = None
    fixed_iters: int | None = None  # iterations a training control step always runs (bench model FLOPs)
    min_iters = 1
    takes_k = False
    trains = False  # an SVMethod: a way of training (svconv.methods.base sets it)
    bench_layer: str | None = None
    bench_model: str | None = None
    flops_on_grid = False
    orthogonalises = False

    @staticmethod
    def flops(
        c_out: int, c_in: int, kernel: Sequence[int], size: Sequence[int], stride: Sequence[int], iters: int, k: int | None
    ) -> float | None:
        return None

    @classmethod
    def bench_skip(cls, padding: str, tt: bool, ndim: int) -> str | None:
        return None

    @classmethod
    def layer_value(
        cls, module: nn.Module, input_shape: Sequence[int], iters: int | None, k: int | None, generator: torch.Generator
    ) -> Any:
        """The spectral-norm value(s) of one conv or TT layer (the bench takes the max)."""
        raise NotImplementedError(f"{cls.name!r} has no per-layer value")

    @classmethod
    def layer_control(cls, module: nn.Module, input_shape: Sequence[int], clip_to: float, iters: int | None, state: dict) -> Any:
        """Control one conv or TT layer in place; a ``svconv.control.ControlResult``."""
        raise NotImplementedError(f"{cls.name!r} has no per-layer control")


class Estimator(Registered):
    """A spectral-norm routine that the bench measures but that is not a way of training."""


def register(cls: type[Registered]) -> type[Registered]:
    """Add an entry (usable as a class decorator); the same name twice for two classes is a ValueError."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty name to be registered")
    if cls.bench_layer not in (None, *LAYER_KINDS):
        raise ValueError(f"{cls.__name__}.bench_layer must be None or one of {', '.join(LAYER_KINDS)}; got {cls.bench_layer!r}")
    if cls.bench_model not in (None, *MODEL_KINDS):
        raise ValueError(f"{cls.__name__}.bench_model must be None or one of {', '.join(MODEL_KINDS)}; got {cls.bench_model!r}")
    known = _ENTRIES.get(cls.name)
    if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"two entries named {cls.name!r}: {known.__module__}.{known.__qualname__} and {cls.__module__}.{cls.__qualname__}")
    _ENTRIES[cls.name] = cls
    return cls


def entries() -> dict[str, type[Registered]]:
    """Every entry by name, ordered by ``order`` then registration (``svconv.methods`` registers its modules'
    entries, in alphabetical module order, when the package is imported)."""
    ranked = sorted(enumerate(_ENTRIES.values()), key=lambda p: (p[1].order, p[0]))
    return {cls.name: cls for _, cls in ranked}


def training_methods() -> dict[str, type[Registered]]:
    """The entries one can train with (``SVMethod`` subclasses: ``trains``), by name."""
    return {n: c for n, c in entries().items() if c.trains}


def layer_methods() -> dict[str, str]:
    """``{name: what a layer bench row is}`` for every entry measured per layer."""
    return {n: c.bench_layer for n, c in entries().items() if c.bench_layer}


def model_methods() -> dict[str, str]:
    """``{name: what a model bench row is}`` for every entry measured per model."""
    return {n: c.bench_model for n, c in entries().items() if c.bench_model}


def entry(name: str) -> type[Registered]:
    """The entry called ``name``; ValueError listing the known names otherwise."""
    known = entries()
    if name not in known:
        raise ValueError(f"method must be one of {', '.join(known)}; got {name!r}")
    return known[name]
