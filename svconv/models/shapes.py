"""Input shapes of every submodule of a model, found by one forward pass on a dummy input."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


@torch.no_grad()
def input_shapes(model: nn.Module, input_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """``{module name: shape of its input without the batch dimension}`` for every submodule called.

    ``input_shape`` is one model input without the batch dimension, e.g. ``(3, 32, 32)``. The model
    runs once in eval mode on zeros (its mode is restored), on the device and dtype of its parameters.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    shapes: dict[str, tuple[int, ...]] = {}
    # the modules of weight parametrisations (e.g. svconv.layers.aol) map weights, not activations: not layers
    names = {m: n for n, m in model.named_modules() if "parametrizations" not in n.split(".")}

    def record(mod: nn.Module, args: tuple) -> None:  # must return None: a returned value replaces the args
        shapes.setdefault(names[mod], tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(record) for m in names]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes
