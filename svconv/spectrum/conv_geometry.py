"""Where a PyTorch convolution's outputs live on a periodic grid: the one rule for bounds, metrics and methods.

A PyTorch convolution is ``restrict ∘ C_N ∘ embed ∘ pad`` (``docs/design.md``, "Bounds of conv layers"):
``pad`` copies input entries (zeros padding: an isometric embedding, norm 1; circular/reflect/replicate: a
0/1 copy map of norm ``sqrt`` of the largest number of copies of one entry), ``embed`` places the padded input
into a periodic grid ``N`` at least as large (zeros elsewhere), ``C_N`` is the periodic convolution on that
grid and ``restrict`` keeps the layer's outputs. No kept output reads across the grid's wrap-around, so
``||layer|| <= ||pad|| · ||C_N||``.

Two flags, kept distinct:

- ``periodic`` (a valid bound on the input grid): circular padding of at most ``K - 1`` in total
  (``K = dil·(k-1)+1``), a kernel no larger than the input and a stride dividing it. Every output is then an
  output of the periodic operator on the input grid itself (shifted by ``left``), so ``||layer|| <= ||C_n||``
  with no padding factor.
- ``exact``: periodic with ``l + r == K - 1`` exactly; the layer keeps *every* output of ``C_n``, so its norm
  *is* ``||C_n||``. With less padding it keeps only some outputs and ``||C_n||`` is an upper bound only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from svconv.spectrum._checks import as_tuple, check_weight

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


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
    """Spectral norm of the padding map: 1 for zeros; ``prod_j sqrt(max copies of one entry along j)`` otherwise
    (the copy map is separable, so its largest count is the product of the per-dimension ones)."""
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


@dataclass(frozen=True)
class ConvGeometry:
    """A conv's geometry on one input size, all per spatial dimension.

    ``input_size``: ``(n_1..n_d)``; ``kernel``: the dilated extent ``K_j = dil_j (k_j - 1) + 1``;
    ``stride``; ``pads``: ``(left, right)``; ``padding_mode``: as ``nn.Conv2d``.
    """

    input_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    padding_mode: str

    def __post_init__(self) -> None:
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}; got {self.padding_mode!r}")
        if any(n + l + r < k for n, (l, r), k in zip(self.input_size, self.pads, self.kernel)):
            raise ValueError(
                f"input_size {self.input_size} with padding {self.pads} is smaller than the (dilated) kernel {self.kernel}"
            )

    @property
    def periodic(self) -> bool:
        """Every output is an output of the periodic conv on the input grid (``||layer|| <= ||C_n||``)."""
        return (
            self.padding_mode == "circular"
            and all(l + r <= k - 1 for (l, r), k in zip(self.pads, self.kernel))
            and all(k <= n and n % s == 0 for k, n, s in zip(self.kernel, self.input_size, self.stride))
        )

    @property
    def exact(self) -> bool:
        """The layer is the periodic conv on the input grid (up to a shift): ``||layer|| == ||C_n||``."""
        return self.periodic and all(l + r == k - 1 for (l, r), k in zip(self.pads, self.kernel))

    @property
    def grid(self) -> tuple[int, ...]:
        """The periodic grid whose conv holds every output: the input size when :attr:`periodic`, else the
        smallest multiple of the stride that holds the padded input (and the kernel)."""
        if self.periodic:
            return self.input_size
        return tuple(
            max(math.ceil((n + l + r) / s), math.ceil(k / s)) * s
            for n, (l, r), k, s in zip(self.input_size, self.pads, self.kernel, self.stride)
        )

    @property
    def padding_norm(self) -> float:
        """Norm of the map from the input to :attr:`grid`: 1 when periodic, else that of the padding map."""
        return 1.0 if self.periodic else padding_norm(self.pads, self.input_size, self.padding_mode)


def geometry(
    kernel_size: Sequence[int],
    input_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
) -> ConvGeometry:
    """The :class:`ConvGeometry` of a conv with (undilated) ``kernel_size`` and ``nn.Conv2d``'s arguments."""
    k = tuple(int(v) for v in kernel_size)
    d = len(k)
    dil = as_tuple(dilation, d, "dilation")
    return ConvGeometry(
        input_size=as_tuple(input_size, d, "input_size"),
        kernel=tuple(dj * (kj - 1) + 1 for kj, dj in zip(k, dil)),
        stride=as_tuple(stride, d, "stride"),
        pads=side_padding(padding, k, dil),
        padding_mode=padding_mode,
    )


def conv_geometry(conv: Any, spatial: Sequence[int]) -> ConvGeometry:
    """The geometry of a conv module (``nn.Conv1d/2d/3d`` or anything with their attributes) on inputs of
    spatial size ``spatial``."""
    d = len(conv.kernel_size)
    if len(spatial) != d:
        raise ValueError(f"input_shape of {type(conv).__name__} must have {d} spatial dimensions; got {tuple(spatial)}")
    return geometry(conv.kernel_size, spatial, conv.stride, conv.padding, conv.dilation, conv.padding_mode)
