"""Methods of controlling singular values, one interface (``SVMethod``), registered by name.

Each method module registers its ``SVMethod`` subclasses with ``register(...)`` and is imported below by
name (``svconv.methods.registry``): ``none``, ``clip`` (exact clipping to a tolerance), ``division`` (Gouk
et al. 2021), ``fastclip`` (PowerQR + projection steps), ``gram`` (Gram-iteration rescaling),
``rescale`` (Delattre et al. 2024 spectral rescaling), ``aol`` and ``soc`` (parametrised layers, chosen
through the architecture). The per-layer steps are ``svconv.control``'s functions. ``get_method(name,
...)`` builds one; ``check_method`` and ``check_compatible`` validate a trial's choices.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from svconv.methods.base import Layer, SVMethod, find_layers
from svconv.options import check_unused, effective_options, option_fields, option_names
from svconv.methods.registry import training_methods

# Each module registers its entries (``register(Cls)`` at its end); listing order is ``order``, then this one.
from svconv.methods import clip, division, estimators, fastclip, gram, none, parametrized, peers, rescale  # noqa: E402,F401  isort: skip

METHODS: dict[str, type[SVMethod]] = training_methods()


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method; ValueError listing the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return name


def method_help() -> str:
    """One line per method, ``name: summary``, for ``svconv train --help``."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in METHODS.items())


def check_compatible(method: str, arch: str, rank: int | None = None) -> None:
    """Refuse method/architecture/rank combinations that make no sense, saying why, from what each method
    declares (``SVMethod.families``, ``tt``, ``unavailable``).

    A method whose layers build a family (``aol`` the ``aol-*`` architectures; ``soc`` and the peers'
    methods ``lipconvnet-*``) goes with that family only, and that family only with those methods: the
    other methods would rescale weights that the parametrisation rescales again. A method without TT
    layers takes no rank; a method whose library does not import is refused with the package to install.
    """
    from svconv.models.registry import parse_arch

    check_method(method)
    family = parse_arch(arch).family
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be None (no TT) or an int >= 1; got {rank!r}")
    cls = METHODS[method]
    if cls.families is not None and family not in cls.families:
        raise ValueError(f"method {method!r} needs an architecture of family {', '.join(cls.families)} "
                         f"(its layers build those); got arch {arch!r} (family {family})")  # fmt: skip
    owners = [n for n, c in METHODS.items() if c.families is not None and family in c.families]
    if cls.families is None and owners:
        raise ValueError(f"arch {arch!r} is built from its method's layers and needs method "
                         f"{' or '.join(repr(n) for n in owners)}; got method {method!r}")  # fmt: skip
    if rank is not None and not cls.tt:
        raise ValueError(f"method {method!r} has no TT variant; use rank=None, got {rank}")
    problem = cls.unavailable()
    if problem:
        raise ValueError(problem)


def model_layers(method: str) -> str | None:
    """The ``layers`` argument of ``svconv.models.build_model`` for ``method``: the method's name where its
    own layers build the model (``builds_layers``: the peers'), None for every other method."""
    return method if METHODS[method].builds_layers else None


def get_method(name: str, **options: Any) -> SVMethod:
    """A fresh method object from its options (``svconv.options``: the method's ``options`` dataclass);
    an option the method does not take is refused unless at its default. Call ``attach(model, input_shape)``
    on it before training."""
    check_method(name)
    cls = METHODS[name]
    unknown = sorted(set(options) - set(option_fields()))
    if unknown:
        raise ValueError(f"unknown method option(s) {unknown}; method {name!r} takes {', '.join(option_names(cls.options)) or 'no option'}")
    check_unused(name, cls.options, options)
    return cls(**dataclasses.asdict(effective_options(cls.options, options)))


__all__ = [
    "METHODS",
    "Layer",
    "SVMethod",
    "check_compatible",
    "check_method",
    "find_layers",
    "get_method",
    "method_help",
    "model_layers",
]
