"""Certified upper bounds on the spectral norm of conv layers with any padding mode, stride, dilation and groups.

The bound is ``padding_norm · ||C_grid||`` on the grid of :mod:`svconv.spectrum.conv_geometry`, with
``||C_grid||`` the exact norm of the periodic operator (Sedghi et al. 2019; strided: Senderovich et al.
2022, Theorem 2) or its Gram-iteration bound (Delattre et al. 2023). It is the layer's exact norm when the
geometry is ``exact`` (circular padding of exactly ``K - 1`` in total on a grid the stride divides) and
the exact norm of the periodic operator is used; otherwise an upper bound (``docs/design.md``, "Bounds of
conv layers").
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from svconv.spectrum._checks import check_choice, check_weight
from svconv.spectrum.conv_geometry import ConvGeometry, conv_geometry, dilate_kernel, geometry
from svconv.spectrum.exact import conv_spectral_norm
from svconv.spectrum.gram import gram_iteration_bound

#: ``exact``: the exact norm of the periodic operator; ``gram``: its Gram-iteration bound (6 steps).
CONV_BOUND_METHODS = ("exact", "gram")
# Relative margin for float64 rounding in the eigenvalue solve (its error is ~1e-16 relative), so the value
# stays an upper bound of the exact norm; far below anything a Lipschitz certificate resolves.
ROUNDING = 1e-10
GRAM_STEPS = 6


def geometry_bound(weight: torch.Tensor, geom: ConvGeometry, method: str = "exact") -> float:
    """``padding_norm · ||C_grid||`` for a dense (already dilated) kernel ``(c_out, c_in, K_1..K_d)``, d in
    {1, 2, 3}, with ``geom.kernel == K``; computed in float64 with the :data:`ROUNDING` margin."""
    check_choice(method, CONV_BOUND_METHODS, "method")
    w = weight.detach().to(torch.float64)
    grid, stride = geom.grid, geom.stride
    if w.dim() == 3:  # 1-D: a 2-D conv with a trailing axis of size 1 has the same singular values
        w, grid, stride = w.unsqueeze(-1), (*grid, 1), (*stride, 1)
    if method == "exact":
        sigma = conv_spectral_norm(w, grid, stride)
    else:
        sigma = gram_iteration_bound(w, grid, n_iter=GRAM_STEPS, stride=stride)
    return geom.padding_norm * float(sigma) * (1 + ROUNDING)


def conv_operator_bound(
    weight: torch.Tensor,
    input_size: Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
    method: str = "exact",
) -> float:
    """Certified upper bound on the spectral norm of ``conv(pad(x), weight)`` on inputs of spatial size ``input_size``.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``, d in {2, 3} (groups = 1).
        input_size: spatial size ``(n_1, ..., n_d)`` of one input.
        stride, padding, dilation, padding_mode: as in ``nn.Conv2d``/``nn.Conv3d``.
        method: ``exact`` or ``gram`` (:data:`CONV_BOUND_METHODS`).

    Returns:
        A float. With ``method="exact"`` it is the exact norm (up to a 1e-10 relative rounding margin) when
        the geometry is ``exact``: circular padding of exactly ``dil·(k-1)`` in total with a stride dividing the
        input; circular padding of less is bounded by the periodic operator on the input grid (a bound, not
        the norm). Any other padding: an upper bound.
    """
    check_weight(weight)
    geom = geometry(tuple(weight.shape[2:]), input_size, stride, padding, dilation, padding_mode)
    return geometry_bound(dilate_kernel(weight, dilation), geom, method)


def conv_layer_bound(conv: Any, input_shape: Sequence[int], method: str = "exact") -> tuple[float, bool]:
    """``(bound, exact)`` for an ``nn.Conv1d/2d/3d`` (any groups) on one input ``(c_in, n_1..n_d)``.

    ``exact`` is True when ``bound`` is the layer's exact spectral norm (an ``exact`` geometry with
    ``method="exact"``). A grouped conv is block-diagonal over its groups: its norm is the largest of theirs.
    """
    check_choice(method, CONV_BOUND_METHODS, "method")
    if getattr(conv, "transposed", False):
        raise ValueError(f"{type(conv).__name__} (transposed convolution) has no Lipschitz bound here")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != conv.weight.dim() - 1 or shape[0] != conv.in_channels:
        raise ValueError(
            f"input_shape of {type(conv).__name__} must be ({conv.in_channels}, n_1, ..., n_{conv.weight.dim() - 2}); got {shape}"
        )
    geom = conv_geometry(conv, shape[1:])
    w = conv.weight.detach()
    if w.dim() > 3:
        w = dilate_kernel(w, conv.dilation)
    elif conv.dilation[0] > 1:  # 1-D: dilate as a 2-D kernel with a unit axis
        w = dilate_kernel(w.unsqueeze(-1), (conv.dilation[0], 1)).squeeze(-1)
    per_group = conv.out_channels // conv.groups
    bound = max(geometry_bound(w[i * per_group : (i + 1) * per_group], geom, method) for i in range(conv.groups))
    return bound, method == "exact" and geom.exact


def folded_circular_norm(conv: torch.nn.Conv2d, spatial: Sequence[int]) -> float | None:
    """Exact spectral norm of a stride-1 conv with circular 'same' padding on a map of size ``spatial``, also
    when the kernel is larger than the map (e.g. 3x3 on 2x2, LipConvNet's fourth block), or None for any
    other conv. The wrap-around makes the layer the periodic conv on the map with the kernel folded onto it
    (``W_f[j] = sum of W[p] over p = j mod n``; the padding offset is a shift), whose norm is exact
    (``svconv.spectrum.conv_spectral_norm``, with its rounding margin). ``conv_layer_bound`` bounds such a layer through a padded grid
    and the copy norm of the padding (2 for 3x3 on 2x2), twice this norm for an orthogonal kernel."""
    n = [int(v) for v in spatial]
    same = conv.padding == "same" or all(2 * p == k - 1 for p, k in zip(conv.padding, conv.kernel_size))
    if conv.padding_mode != "circular" or not same or tuple(conv.stride) != (1, 1) or tuple(conv.dilation) != (1, 1) or conv.groups != 1:
        return None
    w = conv.weight.detach().double()
    folded = w.new_zeros(*w.shape[:2], *n)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            folded[:, :, i % n[0], j % n[1]] += w[:, :, i, j]
    return float(conv_spectral_norm(folded, n)) * (1 + ROUNDING)
