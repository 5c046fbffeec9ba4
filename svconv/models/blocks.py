"""Structural modules every architecture is built from, so that generic code (the network Lipschitz
bound, the SV-control methods) can walk any model: ``nn.Sequential`` for composition, ``Residual``
for skip connections, ``Normalize`` for the input normalisation inside the model.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; inputs stay in [0, 1] outside the model. Lipschitz ``1/min(std)``.

    ``mean``, ``std``: ``(C,)``; input ``(batch, C, *spatial)``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length; got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive; got {list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape).to(x.dtype)) / self.std.view(shape).to(x.dtype)


def input_std(model: nn.Module) -> torch.Tensor | None:
    """The ``std`` ``(C,)`` of the first :class:`Normalize` in ``model`` (what turns pixel units into the
    normalised-input units the network sees), or None when it has none."""
    for m in model.modules():
        if isinstance(m, Normalize):
            return m.std.detach()
    return None


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; ``shortcut`` None is the identity. Lipschitz ``Lip(body) + Lip(shortcut)``."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
