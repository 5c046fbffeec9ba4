"""Methods of controlling singular values, one interface (``SVMethod``), registered by name.

Every ``SVMethod`` subclass with a ``name`` in a module of this package is registered by being there
(``svconv.methods.registry``): ``none``, ``clip`` (exact clipping to a tolerance), ``division`` (Gouk
et al. 2021), ``fastclip`` (PowerQR + projection steps), ``gram`` (Gram-iteration rescaling),
``rescale`` (Delattre et al. 2024 spectral rescaling), ``aol`` and ``soc`` (parametrised layers, chosen
through the architecture). The per-layer steps are ``svconv.control``'s functions. ``get_method(name,
...)`` builds one; ``check_method`` and ``check_compatible`` validate a trial's choices.
"""

from __future__ import annotations

from svconv.methods.base import Layer, SVMethod, find_layers
from svconv.methods.registry import training_methods

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
    """Refuse method/architecture/rank combinations that make no sense, saying why.

    ``aol`` goes with (and only with) the ``aol-*`` architectures, ``soc`` with ``lipconvnet-*``: their
    layers are the parametrisation, and the other methods would rescale weights that the parametrisation
    rescales again. AOL layers have no TT form, so ``aol-*`` takes no rank. The peers' methods (``aoc``,
    ``bcop``, ``sll``, ``cayley``, ``bjorck``) build ``lipconvnet-*`` from their library's layers, without a
    rank, and are refused with the package to install when that library does not import.
    """
    from svconv.layers.peers import PEERS, peer_problem
    from svconv.models.registry import AOL_ARCHS, parse_arch

    check_method(method)
    family = parse_arch(arch).family
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be None (no TT) or an int >= 1; got {rank!r}")
    if method == "aol" and family != "aol":
        raise ValueError(f"method 'aol' needs an AOL architecture ({', '.join(AOL_ARCHS)}); got arch {arch!r}")
    if family == "aol" and method != "aol":
        raise ValueError(f"arch {arch!r} is built from AOL layers and needs method 'aol'; got method {method!r}")
    lipconvnet = ("soc", *PEERS)  # SOC or another library's layers build a LipConvNet (svconv.layers.peers)
    if method in lipconvnet and family != "lipconvnet":
        raise ValueError(f"method {method!r} needs a LipConvNet architecture (lipconvnet-N); got arch {arch!r}")
    if family == "lipconvnet" and method not in lipconvnet:
        raise ValueError(
            f"arch {arch!r} is built from SOC layers and needs method 'soc' (or a peer's layers: {', '.join(PEERS)}); got method {method!r}"
        )
    if method in PEERS:
        if rank is not None:
            raise ValueError(f"method {method!r} has no TT variant (another library's layers); use rank=None, got {rank}")
        problem = peer_problem(method)
        if problem:
            raise ValueError(problem)
    if family == "aol" and rank is not None:
        raise ValueError(f"arch {arch!r} has no TT variant (AOL rescales the full kernel); use rank=None, got {rank}")


def model_layers(method: str) -> str | None:
    """The ``layers`` argument of ``svconv.models.build_model`` for ``method``: the method's name for the
    peers' methods (their library's layers build the LipConvNet), None for every other method."""
    from svconv.layers.peers import PEERS

    return method if method in PEERS else None


def get_method(
    name: str,
    clip_to: float = 1.0,
    clip_every: int = 1,
    clip_iters: int = 1,
    power_iters: int = 1,
    bn_concat: bool = False,
    clip_tol: float = 0.01,
    clip_to_linear: float | None = None,
    clip_to_bn: float | None = None,
    clip_k: int = 1,
) -> SVMethod:
    """A fresh method object; call ``attach(model, input_shape)`` on it before training."""
    from svconv.methods.fastclip import check_fastclip_options

    check_method(name)
    extra = {"clip_k": check_fastclip_options(name, clip_k, bn_concat)} if clip_k != 1 else {}  # only methods that take it
    return METHODS[name](
        clip_to=clip_to, clip_every=clip_every, clip_iters=clip_iters, power_iters=power_iters, bn_concat=bn_concat,
        clip_tol=clip_tol, clip_to_linear=clip_to_linear, clip_to_bn=clip_to_bn, **extra,
    )


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
