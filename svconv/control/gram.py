"""``gram_rescale_``: rescale one layer by its Gram-iteration upper bound, in place (Delattre et al. 2023)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.control.layer import check_plain, controlled_part, conv_grid, exact_norm, full_kernel, relative_change, spatial_size
from svconv.control.result import ControlResult
from svconv.spectrum._checks import check_positive

GRAM_ITERS = 6


def gram_bound(module: nn.Module, input_size: int | Sequence[int] | None = None, n_iter: int = GRAM_ITERS) -> torch.Tensor:
    """Upper bound (0-d) on the spectral norm of a conv (on inputs of ``input_size``) or linear layer.

    Convs: ``gram_iteration_bound`` of the periodic operator on the layer's grid (the input size for
    circular padding, otherwise the padded input rounded up to the stride, in which the layer embeds)
    times the norm of the padding map: an honest upper bound for any padding mode.
    """
    from svconv.spectrum import gram_iteration_bound

    if isinstance(module, nn.Linear):
        return gram_iteration_bound(module.weight[:, :, None, None], (1, 1), n_iter=n_iter)
    check_plain(module, type(module).__name__, "gram")
    grid, stride, pad_norm = conv_grid(module, spatial_size(module, input_size))
    return gram_iteration_bound(module.weight, grid, n_iter=n_iter, stride=stride) * pad_norm


@torch.no_grad()
def gram_rescale_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    n_iter: int = GRAM_ITERS,
    check: bool = False,
) -> ControlResult:
    """``W <- W / max(1, bound / max_sv)`` with ``bound`` from ``n_iter`` Gram iterations, in place.

    TT layers: frames orthogonalised, then the core. The result's norm is at most ``max_sv`` for any
    padding mode (the bound is honest); ``sigma_after`` is None unless ``check`` (exact norm).
    """
    max_sv = check_positive(max_sv, "max_sv")
    before = full_kernel(module).clone()
    target, _ = controlled_part(module)
    bound = gram_bound(target, input_size, n_iter)
    target.weight.div_(bound.div(max_sv).clamp_min(1.0))
    after = exact_norm(module, input_size) if check else None
    return ControlResult(after, float(max_sv), int(bool(bound > max_sv)), relative_change(before, module))
