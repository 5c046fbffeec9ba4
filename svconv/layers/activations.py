"""Gradient-norm-preserving activations for Lipschitz networks."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MaxMin(nn.Module):
    """MaxMin (Anil et al. 2019, as in SOC's LipConvNet): split the channels into halves ``a``, ``b`` and return
    ``cat(max(a, b), min(a, b))``. Piecewise a permutation of the entries, so 1-Lipschitz (in l2).

    Input ``(batch, c, *spatial)`` with ``c`` even; output the same shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] % 2:
            raise ValueError(f"MaxMin needs an even number of channels (dim 1); got input shape {tuple(x.shape)}")
        a, b = x.chunk(2, dim=1)
        return torch.cat((torch.maximum(a, b), torch.minimum(a, b)), dim=1)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 for any input ``(c, *spatial)`` with ``c`` even."""
        shape = tuple(int(v) for v in input_shape)
        if not shape or shape[0] % 2:
            raise ValueError(f"input_shape must start with an even channel count; got {shape}")
        return 1.0
