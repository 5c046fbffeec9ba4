"""Per-layer spectral norms of a trained model: the rows of the ``layers`` results table."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from svconv.kinds import CONV_TYPES, LayerKind, layer_kind
from svconv.layers.batchnorm import bn_lipschitz
from svconv.metrics.lipschitz_bound import has_own_bound, layer_lipschitz_bound, walk_bound
from svconv.spectrum.bounds import conv_layer_bound
from svconv.spectrum.conv_geometry import conv_geometry
from svconv.spectrum.power import power_iteration

KINDS = tuple(k.value for k in LayerKind)


def _size(shape: Sequence[int]) -> str | None:
    return "x".join(str(v) for v in shape) if len(shape) else None


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return int(max(value)) if len(value) else None
    return int(value)


def _kernel(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    return "x".join(str(v) for v in value)


#: Power iteration stops when the estimate changes by less than this, relatively, in one step.
POWER_RTOL = 1e-6


def _power(module: nn.Module, shape: tuple[int, ...], n_iter: int) -> float:
    """Power-iteration estimate of the spectral norm of the module's linear part (a lower bound up to rounding):
    at most ``n_iter`` steps from a seeded random start, fewer once it settles to :data:`POWER_RTOL`. Near-orthogonal
    layers (SOC, AOL, clipped convs) stop after a few steps, which matters: each is a forward and a backward pass."""
    gen = torch.Generator().manual_seed(0)
    return float(power_iteration(module, shape, n_iter=n_iter, generator=gen, rtol=POWER_RTOL)[0])


def layer_spectral_norms(
    model: nn.Module,
    input_shape: Sequence[int],
    power_iters: int = 100,
    bounds: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per conv, linear, batch-norm, TT, SOC and AOL layer (each a ``svconv.kinds.LayerKind``; layers
    without a kind, such as MaxMin or InvertibleDownsampling, get none), in forward order, in eval mode.

    Keys are the ``layers`` columns of ``svconv.results.schema`` (without trial_id, sweep,
    schema_version): ``layer`` (module path), ``kind``, ``spectral_norm``, ``norm_method``, ``c_in``,
    ``c_out``, ``kernel`` ("3x3"), ``stride``, ``input_size`` ("32x32"), ``rank``, and
    ``lipschitz_bound`` (the certified per-layer bound used by the network bound).

    ``spectral_norm`` is the norm of the layer's true operator on its input size:
    ``exact`` for periodic (circular) convs (``svconv.spectrum``), linear layers (SVD) and batch norm;
    ``power`` (``power_iters`` steps of power iteration on the layer itself, a lower estimate) for
    convs with other padding and for TT, SOC and AOL layers (at most ``power_iters`` steps, fewer once
    the estimate settles to :data:`POWER_RTOL`).

    ``bounds``: the per-leaf bounds of ``svconv.metrics.leaf_lipschitz_bounds`` when already computed (the
    certified bounds of SOC layers and large convs are costly); None computes them here.
    """
    model_was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []

    def leaf(name: str, m: nn.Module, shape: tuple[int, ...]) -> float:
        kind = layer_kind(m)
        conv = isinstance(m, CONV_TYPES) and not has_own_bound(m)
        if bounds is not None and name in bounds:
            bound, exact = bounds[name], conv and conv_geometry(m, shape[1:]).exact
        elif conv:
            bound, exact = conv_layer_bound(m, shape)
        else:
            bound, exact = layer_lipschitz_bound(m, shape), False
        if kind is None:  # parameter-free reshaping layers: bounded, but no row
            return bound
        row: dict[str, Any] = {"layer": name, "lipschitz_bound": bound, "kernel": None, "stride": None,
                               "input_size": _size(shape[1:]), "rank": None}  # fmt: skip
        if has_own_bound(m):
            with torch.no_grad():
                param = next(m.parameters(), None)
                out = m(torch.zeros(1, *shape, device=param.device if param is not None else None))
            row.update(kind=kind.value, spectral_norm=_power(m, shape, power_iters), norm_method="power",
                       c_in=shape[0], c_out=int(out.shape[1]), kernel=_kernel(getattr(m, "kernel_size", None)),
                       stride=_int(getattr(m, "stride", None)), rank=_int(getattr(m, "rank", None)))  # fmt: skip
        elif isinstance(m, CONV_TYPES):
            if exact:  # the bound is the exact norm of this periodic conv
                sigma, method = bound, "exact"
            else:
                sigma, method = _power(m, shape, power_iters), "power"
            row.update(kind=kind.value, spectral_norm=sigma, norm_method=method, c_in=m.in_channels,
                       c_out=m.out_channels, kernel=_kernel(m.kernel_size), stride=_int(m.stride))  # fmt: skip
        elif isinstance(m, nn.Linear):
            row.update(kind=kind.value, spectral_norm=bound, norm_method="exact", c_in=m.in_features,
                       c_out=m.out_features, input_size=None)  # fmt: skip
        else:  # batch norm
            row.update(kind="bn", spectral_norm=bn_lipschitz(m), norm_method="exact",
                       c_in=m.num_features, c_out=m.num_features)  # fmt: skip
        rows.append(row)
        return bound

    try:
        walk_bound(model, input_shape, leaf)
    finally:
        model.train(model_was_training)
    return rows

