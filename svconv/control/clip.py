"""``clip_``: exact clipping of one layer to a target spectral norm, in place (Sedghi et al. 2019;
strided: Senderovich et al. 2022 Sec. 5.2; to a tolerance: ``svconv.spectrum.clip_to_target``)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from svconv.control.layer import check_plain, conv_grid, exact_norm, full_kernel, controlled_kind, relative_change, spatial_size
from svconv.control.result import ControlResult
from svconv.spectrum._checks import check_positive


@torch.no_grad()
def clip_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    tol: float = 0.01,
    max_passes: int = 20,
    level: float | None = None,
    check: bool = False,
    **options: Any,
) -> ControlResult:
    """Clip the singular values of one conv, TT or linear layer to ``max_sv`` in place.

    Conv layers (groups 1, dilation 1): the periodic operator on the layer's grid (the input size for
    circular padding, else the padded input rounded up to the stride, ``docs/design.md``) is clipped by
    ``svconv.spectrum.clip_to_target`` until its true norm is within ``tol`` of ``max_sv`` (or below it
    where nothing needed clipping), at most ``max_passes`` passes, starting from the clip ``level``
    (the previous control step's, for a warm start; default ``max_sv``). ``options`` go to it unchanged
    (``guarantee``, ``solver``, ``strategy``). ``tol=0``: ``max_passes`` plain clip-then-restrict
    passes at level ``max_sv`` (``clip_conv_singular_values``), the pre-target behaviour.
    TT layers: the same on the orthogonalised core (``TTConv2d.clip_to_target``). Linear layers: the SVD
    with the singular values clamped (exact in one pass).

    ``input_size``: the spatial size of the layer's input (an int or one per dimension; unused for
    linear layers). Returns what was achieved; ``sigma_after`` is the periodic operator's norm (an
    upper bound of a zero-padded layer's own norm), measured afterwards for ``tol=0`` only with ``check``.
    """
    max_sv = check_positive(max_sv, "max_sv")
    if not tol >= 0:
        raise ValueError(f"tol must be a number >= 0; got {tol!r}")
    kind = controlled_kind(module)
    before = full_kernel(module).clone()
    if kind == "linear":
        U, S, Vh = torch.linalg.svd(module.weight, full_matrices=False)
        module.weight.copy_((U * S.clamp_max(max_sv)) @ Vh)
        passes = int(S.max() > max_sv)
        return ControlResult(min(float(S.max()), float(max_sv)), float(max_sv), passes, relative_change(before, module), float(max_sv))
    conv = module.core if kind == "tt" else module
    check_plain(conv, "core" if kind == "tt" else type(conv).__name__, "clip")
    grid, stride, _ = conv_grid(conv, spatial_size(conv, input_size))
    if tol == 0:
        from svconv.spectrum import clip_conv_singular_values

        if kind == "tt":
            module.clip_(max_sv, grid, n_iter=max_passes)  # orthogonalises the frames first
        else:
            module.weight.copy_(clip_conv_singular_values(module.weight, grid, max_sv, stride, n_iter=max_passes))
        sigma = exact_norm(module, input_size) if check else None
        return ControlResult(sigma, float(max_sv), max_passes, relative_change(before, module), float(max_sv))
    from svconv.spectrum import clip_to_target

    if kind == "tt":
        res = module.clip_to_target(max_sv, grid, tol=tol, max_passes=max_passes, level=level, **options)
    else:
        res = clip_to_target(module.weight, grid, max_sv, stride, tol=tol, max_passes=max_passes, level=level, **options)
        module.weight.copy_(res.weight)
    return ControlResult(float(res.sigma), float(max_sv), int(res.passes), relative_change(before, module), float(res.level))
