"""Parameter-free 1-Lipschitz reshaping modules: channel selection and zero padding of channels or space.

Each has ``lipschitz_bound(input_shape) -> 1.0`` so that generic walkers (the network Lipschitz bound)
treat them as leaves: a coordinate projection and isometric zero embeddings.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


class FirstChannels(nn.Module):
    """Keep the first ``n`` channels (dim 1) and drop the rest (AOL's and SOC's way to change width)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = _positive(n, "n")

    def extra_repr(self) -> str:
        return f"n={self.n}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] < self.n:
            raise ValueError(f"FirstChannels({self.n}) needs inputs (batch, channels >= {self.n}, ...); got {tuple(x.shape)}")
        return x[:, : self.n]

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1: a projection onto coordinates."""
        return 1.0


class PadChannels(nn.Module):
    """Append zero channels up to ``n`` channels (SOC's way to widen): an isometric embedding."""

    def __init__(self, n: int):
        super().__init__()
        self.n = _positive(n, "n")

    def extra_repr(self) -> str:
        return f"n={self.n}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] > self.n:
            raise ValueError(f"PadChannels({self.n}) needs inputs (batch, channels <= {self.n}, ...); got {tuple(x.shape)}")
        extra = self.n - x.shape[1]
        return torch.cat((x, x.new_zeros(x.shape[0], extra, *x.shape[2:])), dim=1) if extra else x

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1: zeros are appended, norms are kept."""
        return 1.0


class PadTo(nn.Module):
    """Zero-pad every spatial size of ``(batch, c, n_1, ..., n_d)`` to ``size`` (split evenly, extra pixel after)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = _positive(size, "size")

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        if any(n > self.size for n in spatial):
            raise ValueError(f"PadTo({self.size}) needs spatial sizes <= {self.size}; got {tuple(spatial)}")
        pad: list[int] = []
        for n in reversed(spatial):
            total = self.size - n
            pad += [total // 2, total - total // 2]
        return F.pad(x, pad) if any(pad) else x

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1: an isometric embedding."""
        return 1.0
