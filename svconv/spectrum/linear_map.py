"""The linear part ``M x = f(x) - f(0)`` of a module that is linear plus a constant, and its adjoint.

Used by power iteration, PowerQR and the dense operator: any padding mode, stride, dilation, groups,
and compositions such as conv then batch norm in eval mode. Gradients are taken with respect to the
input only, so the weights get no gradient (the seed's PowerQR back-propagated into them).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Module = Callable[[torch.Tensor], torch.Tensor]


def _reference_param(module: Module) -> torch.Tensor | None:
    params = getattr(module, "parameters", None)
    if params is None:
        return None
    return next(iter(params()), None)


def resolve_device_dtype(
    module: Module, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the module's first parameter, unless given (CPU float32 for parameterless ones)."""
    p = _reference_param(module)
    dev = torch.device(device) if device is not None else (p.device if p is not None else torch.device("cpu"))
    typ = dtype or (p.dtype if p is not None and p.is_floating_point() else torch.float32)
    return dev, typ


class LinearPart:
    """``M x = f(x) - f(0)`` on a batch of inputs of shape ``(b, *input_shape)``, with ``M^T M x`` by autodiff."""

    def __init__(self, module: Module, input_shape: Sequence[int], device=None, dtype=None):
        self.module = module
        self.input_shape = tuple(int(v) for v in input_shape)
        self.device, self.dtype = resolve_device_dtype(module, device, dtype)
        with torch.no_grad():
            self.offset = module(torch.zeros(1, *self.input_shape, device=self.device, dtype=self.dtype))

    @property
    def in_features(self) -> int:
        return int(torch.Size(self.input_shape).numel())

    @property
    def out_features(self) -> int:
        return int(self.offset[0].numel())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` for ``x`` of shape ``(b, *input_shape)``, without a graph."""
        with torch.no_grad():
            return self.module(x) - self.offset

    def gram(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M x, M^T M x)``: the gradient of ``0.5 ||M x||^2`` with respect to ``x`` only."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y = self.module(x) - self.offset
            (g,) = torch.autograd.grad(y, x, grad_outputs=y.detach())
        return y.detach(), g
