"""Invertible downsampling (space-to-depth) used by LipConvNet: an orthogonal reshape, Lipschitz 1."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.spectrum.exact import polyphase, unpolyphase


class InvertibleDownsampling(nn.Module):
    """``(batch, c, n_1, ..., n_d) -> (batch, c · f^d, n_1 / f, ..., n_d / f)`` by moving each ``f^d`` block into
    channels (PixelUnshuffle's order for d = 2: channel ``c_i · f^d + offset``), which is the polyphase split of
    ``svconv.spectrum.exact``. A permutation of the entries: orthogonal, so norm-preserving and 1-Lipschitz;
    :meth:`inverse` undoes it.

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
        # the polyphase split of the exact strided spectra (Senderovich et al. 2022), batch as c_out
        return polyphase(x, x.shape[2:], (self.factor,) * (x.dim() - 2))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The input that :meth:`forward` maps to ``y``."""
        d = y.dim() - 2
        if y.shape[1] % self.factor**d:
            raise ValueError(f"channels must be divisible by factor**d = {self.factor**d}; got {y.shape[1]}")
        return unpolyphase(y, y.shape[1] // self.factor**d, (self.factor,) * d)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (a permutation) for ``(c, *spatial)`` with every spatial size divisible by ``factor``."""
        self._check(tuple(int(v) for v in input_shape))
        return 1.0
