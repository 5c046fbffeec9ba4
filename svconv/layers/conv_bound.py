"""Certified upper bounds on the spectral norm of a convolution with any padding mode, stride and dilation.

A PyTorch convolution is ``restrict ∘ C_N ∘ embed ∘ pad``: ``pad`` copies input entries (zeros padding:
an isometric embedding, norm 1; circular/reflect/replicate: a 0/1 copy map of norm ``sqrt`` of the
largest number of copies of one entry), ``embed`` places the padded input into a periodic grid ``N``
at least as large (zeros elsewhere), ``C_N`` is the periodic convolution on that grid and ``restrict``
keeps the layer's outputs. No output the layer keeps reads across the grid's wrap-around, so those
outputs are exactly the layer's, and ``||layer|| <= ||pad|| · ||C_N||`` with ``||C_N||`` computed
exactly (Sedghi et al.; strided: Senderovich et al. Theorem 2). Circular padding of at most ``k - 1``
in total on a grid the stride divides is the periodic operator on the input itself, up to a shift:
the bound is then the exact spectral norm.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.spectrum import conv_spectral_norm
from svconv.spectrum._checks import as_tuple, check_weight

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
# Relative margin for float64 rounding in the eigenvalue solve (its error is ~1e-16 relative), so the value
# stays an upper bound of the exact norm; far below anything a Lipschitz certificate resolves.
ROUNDING = 1e-10


def dilate_kernel(weight: torch.Tensor, dilation: int | Sequence[int]) -> torch.Tensor:
    """The dense kernel of a dilated conv: ``(c_out, c_in, k...) -> (c_out, c_in, dil·(k-1)+1 ...)``, zeros between taps."""
    d = check_weight(weight)
    dil = as_tuple(dilation, d, "dilation")
    if all(v == 1 for v in dil):
        return weight
    k = weight.shape[2:]
    out = weight.new_zeros(*weight.shape[:2], *[dj * (kj - 1) + 1 for kj, dj in zip(k, dil)])
    out[(slice(None), slice(None), *[slice(None, None, dj) for dj in dil])] = weight
    return out


def side_padding(
    padding: str | int | Sequence[int], kernel_size: Sequence[int], dilation: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """``(left, right)`` padding per spatial dimension of a PyTorch conv (``'same'`` puts the odd one right)."""
    d = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            total = [dl * (k - 1) for k, dl in zip(kernel_size, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise ValueError(f"padding must be an int, a tuple of ints, 'same' or 'valid'; got {padding!r}")
    p = (padding,) * d if isinstance(padding, int) else tuple(int(v) for v in padding)
    if len(p) != d or any(v < 0 for v in p):
        raise ValueError(f"padding must be a non-negative int or a sequence of {d} of them; got {padding!r}")
    return tuple((v, v) for v in p)


def padding_norm(pads: Sequence[tuple[int, int]], spatial: Sequence[int], mode: str) -> float:
    """Spectral norm of the padding map: 1 for zeros; ``prod_j sqrt(max copies of one entry along j)`` otherwise."""
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}; got {mode!r}")
    if mode == "zeros" or not any(l or r for l, r in pads):
        return 1.0
    norm = 1.0
    for nj, (lj, rj) in zip(spatial, pads):
        idx = torch.arange(nj, dtype=torch.float64).view(1, 1, nj)
        padded = F.pad(idx, (lj, rj), mode=mode).long().flatten()
        norm *= math.sqrt(int(torch.bincount(padded, minlength=nj).max()))
    return norm


def conv_operator_bound(
    weight: torch.Tensor,
    input_size: Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
) -> float:
    """Certified upper bound on the spectral norm of ``conv(pad(x), weight)`` on inputs of spatial size ``input_size``.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``, d in {2, 3} (groups = 1).
        input_size: spatial size ``(n_1, ..., n_d)`` of one input.
        stride, padding, dilation, padding_mode: as in ``nn.Conv2d``/``nn.Conv3d``.

    Returns:
        A float; exact (up to a 1e-10 relative rounding margin) for circular padding of total ``<= dil·(k-1)`` with a stride
        dividing the input and zeros padding large enough that no output is cut off; an upper bound otherwise.
    """
    d = check_weight(weight)
    n = as_tuple(input_size, d, "input_size")
    s = as_tuple(stride, d, "stride")
    dil = as_tuple(dilation, d, "dilation")
    pads = side_padding(padding, tuple(weight.shape[2:]), dil)
    pad_norm = padding_norm(pads, n, padding_mode)
    w = dilate_kernel(weight.detach().to(torch.float64), dil)
    k = tuple(w.shape[2:])
    if any(nj + l + r < kj for nj, (l, r), kj in zip(n, pads, k)):
        raise ValueError(f"input_size {n} with padding {pads} is smaller than the (dilated) kernel {k}")
    grid, periodic = periodic_grid(n, pads, k, s, padding_mode)
    return (1.0 if periodic else pad_norm) * float(conv_spectral_norm(w, grid, s)) * (1 + ROUNDING)


def periodic_grid(
    input_size: Sequence[int],
    pads: Sequence[tuple[int, int]],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding_mode: str,
) -> tuple[tuple[int, ...], bool]:
    """``(grid, periodic)``: the periodic grid whose convolution holds every output of the layer.

    ``periodic``: circular padding of at most ``k - 1`` in total, a kernel no larger than the input and a
    stride dividing it; every output is then an output of the periodic operator on the input grid itself
    (shifted by ``left``), and ``grid`` is ``input_size``. Otherwise the smallest multiple of the stride that
    holds the padded input (and the kernel), reached from the input through the padding map.
    """
    n = tuple(int(v) for v in input_size)
    if (
        padding_mode == "circular"
        and all(l + r <= kj - 1 for (l, r), kj in zip(pads, kernel_size))
        and all(kj <= nj and nj % sj == 0 for kj, nj, sj in zip(kernel_size, n, stride))
    ):
        return n, True
    grid = tuple(
        max(math.ceil((nj + l + r) / sj), math.ceil(kj / sj)) * sj
        for nj, (l, r), kj, sj in zip(n, pads, kernel_size, stride)
    )
    return grid, False


def conv_lipschitz_bound(conv: nn.Module, input_shape: Sequence[int]) -> float:
    """Certified upper bound on the Lipschitz constant of an ``nn.Conv2d``/``nn.Conv3d`` for one input ``(c_in, *spatial)``.

    Grouped convs are block-diagonal over the groups: the bound is the largest of the groups' bounds.
    """
    if not isinstance(conv, (nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"conv must be an nn.Conv2d or nn.Conv3d; got {type(conv).__name__}")
    shape = tuple(int(v) for v in input_shape)
    d = conv.weight.dim() - 2
    if len(shape) != d + 1 or shape[0] != conv.in_channels:
        raise ValueError(f"input_shape must be ({conv.in_channels}, n_1, ..., n_{d}); got {shape}")
    g = conv.groups
    out_per = conv.out_channels // g
    return max(
        conv_operator_bound(
            conv.weight[i * out_per : (i + 1) * out_per],
            shape[1:],
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.padding_mode,
        )
        for i in range(g)
    )
