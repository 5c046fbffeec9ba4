"""``divide_`` and ``divide_bn_``: Gouk et al. 2021's division of one layer by its norm (power iteration; batch
norm: its exact constant), in place."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.control.layer import controlled_part, exact_norm, full_kernel, relative_change, spatial_size
from svconv.control.result import ControlResult
from svconv.spectrum._checks import check_positive


def layer_input_shape(module: nn.Module, input_size: int | Sequence[int] | None) -> tuple[int, ...]:
    """Input shape of one sample, ``(c_in, *spatial)`` (``(in_features,)`` for linear layers)."""
    if isinstance(module, nn.Linear):
        return (int(module.in_features),)
    return (int(module.in_channels), *spatial_size(module, input_size))


@torch.no_grad()
def divide_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    n_iter: int = 1,
    state: dict | None = None,
    generator: torch.Generator | None = None,
    check: bool = False,
) -> ControlResult:
    """``W <- W / max(1, sigma / max_sv)`` with ``sigma`` from ``n_iter`` warm power iterations, in place.

    The power iteration runs on the layer itself (its real stride, padding mode, dilation, groups);
    TT layers: frames orthogonalised, then the core (Senderovich et al. 2022 Theorem 3.2). ``state``
    (a dict kept by the caller between control steps) holds the warm vector under ``"v"``.
    ``sigma_after`` is None (the power value is a lower estimate) unless ``check`` asks for the exact
    norm (``svconv.control.layer.exact_norm``).
    """
    from svconv.spectrum import power_iteration

    max_sv = check_positive(max_sv, "max_sv")
    state = {} if state is None else state
    before = full_kernel(module).clone()
    target, _ = controlled_part(module)
    shape = layer_input_shape(target, input_size)
    v = state.get("v")
    if v is not None and tuple(v.shape) != shape:
        v = None
    was = target.training
    target.eval()  # no batch statistics or running-stat updates inside a linear-part evaluation
    try:
        sigma, state["v"] = power_iteration(target, shape, n_iter=n_iter, v=v, generator=generator)
    finally:
        target.train(was)
    sigma = float(sigma)
    divided = sigma > max_sv
    if divided:
        target.weight.mul_(max_sv / sigma)
    after = exact_norm(module, input_size) if check else None
    return ControlResult(after, float(max_sv), n_iter, relative_change(before, module))


@torch.no_grad()
def divide_bn_(bn: nn.Module, max_lip: float) -> ControlResult:
    """``gamma <- gamma / max(1, Lip / max_lip)`` for a batch norm, in place (Gouk et al. 2021's BN step).

    ``Lip = max_i |gamma_i| / sqrt(running_var_i + eps)``, the exact Lipschitz constant of eval-mode batch
    norm (``svconv.layers.bn_lipschitz``), so unlike conv and linear layers no estimate is involved: every
    gamma is scaled by the same factor and the layer's constant becomes ``max_lip`` (up to rounding).
    ``sigma_after``: that constant after the step; ``passes``: 1 when it divided, else 0; ``rel_change`` of gamma.
    """
    from svconv.layers import bn_lipschitz

    max_lip = check_positive(max_lip, "max_lip")
    lip = bn_lipschitz(bn)  # type and running-stat checks
    if bn.weight is None:
        raise ValueError("bn must have affine parameters (affine=True) to be divided: its gamma is what moves")
    before = bn.weight.detach().clone()
    divided = lip > max_lip
    if divided:
        bn.weight.div_(lip / max_lip)
    change = float((bn.weight - before).norm() / before.norm().clamp_min(torch.finfo(before.dtype).tiny))
    return ControlResult(bn_lipschitz(bn), float(max_lip), int(divided), change)
