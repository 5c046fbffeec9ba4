"""The layer kinds ``svconv.control`` edits, and what every control function needs of them.

A layer is an ``nn.Conv2d`` / ``nn.Conv3d``, a ``svconv.tt`` layer (controlled through its core after
orthogonalising the frames, Senderovich et al. 2022 Theorem 3.2) or an ``nn.Linear``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.kinds import LayerKind
from svconv.kinds import layer_kind as declared_kind
from svconv.spectrum._checks import as_tuple

#: The kinds a control function edits; others (SOC, AOL, batch norm, parameter-free layers) are refused.
CONTROLLED = (LayerKind.CONV, LayerKind.TT, LayerKind.LINEAR)


def controlled_kind(module: nn.Module) -> LayerKind:
    """``conv`` (2-D / 3-D), ``tt`` or ``linear``, from :func:`svconv.kinds.layer_kind`; ValueError naming the
    allowed types otherwise (an AOL-parametrised conv is ``aol``: its weight is computed, not edited)."""
    kind = declared_kind(module)
    if kind not in CONTROLLED or (kind == LayerKind.CONV and isinstance(module, nn.Conv1d)):
        raise ValueError(
            "module must be an nn.Conv2d, nn.Conv3d, svconv.tt.TTConv2d/TTConv3d or nn.Linear; "
            f"got {type(module).__name__} (kind {kind})"
        )
    return kind


def spatial_size(module: nn.Module, input_size: int | Sequence[int] | None) -> tuple[int, ...]:
    """The input's spatial size as a tuple (one int per spatial dimension of a conv; ``()`` for linear)."""
    if isinstance(module, nn.Linear):
        return ()
    if input_size is None:
        raise ValueError(f"input_size is required for a {type(module).__name__} (its exact spectrum depends on it)")
    return as_tuple(input_size, len(module.kernel_size), "input_size")


def full_kernel(module: nn.Module) -> torch.Tensor:
    """The kernel the layer applies: the weight, or a TT layer's ``full_weight()`` (detached)."""
    return (module.full_weight() if controlled_kind(module) == "tt" else module.weight).detach()


def relative_change(before: torch.Tensor, module: nn.Module) -> float:
    """``||W' - W||_F / ||W||_F`` between a saved full kernel and the layer's current one."""
    after = full_kernel(module)
    return float((after - before).norm() / before.norm().clamp_min(torch.finfo(before.dtype).tiny))


def controlled_part(module: nn.Module) -> tuple[nn.Module, str]:
    """``(module whose weight a control step edits, its kind)``: a TT layer's core after orthogonalising the
    frames (then the core's norm is the layer's), otherwise the layer itself."""
    kind = controlled_kind(module)
    if kind == "tt":
        module.orthogonalize_()
        return module.core, "conv"
    return module, kind


def exact_norm(module: nn.Module, input_size: int | Sequence[int] | None) -> float | None:
    """The layer's exact spectral norm where an exact routine applies, else None.

    Linear: the matrix norm. Conv / TT core with groups 1 and dilation 1: the norm of the periodic
    operator on the layer's grid (``conv_geometry``) times the padding map's norm: the layer's own norm
    for periodic layers, an upper bound otherwise (``docs/design.md``). TT layers are measured through
    the full kernel, so the frames need not be orthogonal.
    """
    from svconv.spectrum import conv_spectral_norm

    kind = controlled_kind(module)
    if kind == "linear":
        return float(torch.linalg.matrix_norm(module.weight.detach(), ord=2))
    conv = module.core if kind == "tt" else module
    if conv.groups != 1 or any(d != 1 for d in conv.dilation):
        return None
    grid, stride, pad_norm = conv_grid(conv, spatial_size(conv, input_size))
    return float(conv_spectral_norm(full_kernel(module), grid, stride)) * pad_norm


def conv_grid(conv: nn.Module, spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    """``(grid, stride, padding norm)``: the periodic grid on which a conv's exact spectrum is computed, its
    stride, and the norm of the map from the input to that grid (1 for periodic layers and zeros padding).

    The one rule of ``svconv.spectrum.conv_geometry``.
    """
    from svconv.spectrum.conv_geometry import conv_geometry

    geom = conv_geometry(conv, spatial)
    return geom.grid, geom.stride, geom.padding_norm


def check_plain(conv: nn.Module, name: str, method: str) -> None:
    """Exact spectral routines need groups 1 and dilation 1; ValueError naming the methods that handle the rest."""
    if conv.groups != 1 or any(d != 1 for d in conv.dilation):
        raise ValueError(
            f"method {method!r} cannot control layer {name!r} (groups={conv.groups}, "
            f"dilation={conv.dilation}): its exact spectrum needs groups=1 and dilation=1; "
            "use 'division' or 'fastclip', which work on any convolution"
        )
