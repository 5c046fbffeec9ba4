"""Invertible downsampling (space-to-depth) used by LipConvNet: an orthogonal reshape, Lipschitz 1."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class InvertibleDownsampling(nn.Module):
    """``(batch, c, n_1, ..., n_d) -> (batch, c · f^d, n_1 / f, ..., n_d / f)`` by moving each ``f^d`` block into
    channels (PixelUnshuffle's order for d = 2: channel ``c_i · f^d + offset``). A permutation of the entries:
    orthogonal, so norm-preserving and 1-Lipschitz; :meth:`inverse` undoes it.

    Args:
        factor: block size ``f`` (int >= 1); every spatial size must be divisible by it.
    """

    def __init__(self, factor: int = 2):
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an int >= 1; got {factor!r}")
        self.factor = factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"

    def _check(self, shape: Sequence[int]) -> None:
        if len(shape) < 2 or any(n % self.factor for n in shape[1:]):
            raise ValueError(
                f"every spatial size must be divisible by factor={self.factor}; got (c, *spatial) = {tuple(shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x.shape[1:])
        f, b, c, spatial = self.factor, x.shape[0], x.shape[1], x.shape[2:]
        d = len(spatial)
        split = [b, c]
        for n in spatial:
            split += [n // f, f]
        # (b, c, m1, f, m2, f, ...) -> (b, c, f, f, ..., m1, m2, ...)
        perm = [0, 1] + [3 + 2 * j for j in range(d)] + [2 + 2 * j for j in range(d)]
        return x.reshape(split).permute(perm).reshape(b, c * f**d, *[n // f for n in spatial])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The input that :meth:`forward` maps to ``y``."""
        f, b, cf, spatial = self.factor, y.shape[0], y.shape[1], y.shape[2:]
        d = len(spatial)
        if cf % f**d:
            raise ValueError(f"channels must be divisible by factor**d = {f**d}; got {cf}")
        x = y.reshape(b, cf // f**d, *([f] * d), *spatial)
        perm = [0, 1]
        for j in range(d):
            perm += [2 + d + j, 2 + j]
        return x.permute(perm).reshape(b, cf // f**d, *[m * f for m in spatial])

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (a permutation) for ``(c, *spatial)`` with every spatial size divisible by ``factor``."""
        self._check(tuple(int(v) for v in input_shape))
        return 1.0
