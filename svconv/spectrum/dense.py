"""The explicit matrix of a linear(-plus-constant) module: ground truth on small shapes."""

from __future__ import annotations

from typing import Sequence

import torch

from svconv.spectrum.linear_map import LinearPart, Module


def dense_operator(
    module: Module, input_shape: Sequence[int], batch: int = 1024, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Matrix ``(out_features, in_features)`` of ``x -> module(x) - module(0)``, built column by column.

    Columns are the images of the standard basis of ``input_shape`` (no batch dimension), ``batch``
    at a time. Inputs and outputs are flattened in C order.
    """
    M = LinearPart(module, input_shape, dtype=dtype)
    N = M.in_features
    cols = []
    for start in range(0, N, batch):
        idx = torch.arange(start, min(start + batch, N), device=M.device)
        basis = torch.zeros(len(idx), N, device=M.device, dtype=M.dtype)
        basis[torch.arange(len(idx)), idx] = 1
        cols.append(M.apply(basis.view(len(idx), *M.input_shape)).reshape(len(idx), -1))
    return torch.cat(cols).T.contiguous()
