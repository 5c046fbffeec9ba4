"""Empirical Lipschitz ratios (Senderovich et al. 2022, App. C.1, after Sanyal et al. 2020): a lower bound per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ScaledInput(nn.Module):
    """``z -> model(z * std)``: ``model`` seen from inputs in units of ``x / std`` (per channel)."""

    def __init__(self, model: nn.Module, std: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("std", std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z * self.std.view(1, -1, *([1] * (z.dim() - 2))).to(z))


def empirical_lipschitz(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    step: float = 0.5,
    batch_size: int = 256,
    input_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image ratios ``||f(x) - f(x')||_2 / ||x - x'||_2`` with ``x' = x + step * g / ||g||_2``.

    ``g`` is the gradient of the cross-entropy loss at ``x`` (an L2 FGSM step of radius ``step``);
    ``x'`` is not clipped to [0, 1] (the ratio bounds the Lipschitz constant wherever it is taken).
    Every ratio is a lower bound on the network's Lipschitz constant; their maximum is the seed's
    "Lip." column. The model runs in eval mode (its mode is restored); ``x`` ``(N, C, H, W)``,
    ``y`` ``(N,)``. Images with a zero gradient give ratio 0. Returns ``(N,)`` float32 on ``x``'s device.

    Units: by default ``x``'s ([0, 1] pixels; a 1-Lipschitz network behind ``Normalize(std)`` can give up to
    ``1/min(std)``). ``input_std`` ``(C,)`` (the model's ``Normalize`` std, ``svconv.models.blocks.input_std``)
    measures the step and the ratio in normalised-input units ``x / input_std`` instead, as Senderovich et
    al. 2022 do (their inputs are normalised before the network): at most the network's own bound.
    """
    if input_std is not None:
        std = torch.as_tensor(input_std, dtype=torch.float32).flatten()
        if x.dim() < 2 or std.numel() != x.shape[1] or not bool((std > 0).all()):
            raise ValueError(f"input_std must hold one positive value per input channel ({x.shape[1]}); got {tuple(std.shape)}")
        scaled = _ScaledInput(model, std.to(x.device)).train(model.training)  # restores the model's own mode
        return empirical_lipschitz(scaled, x / std.to(x).view(1, -1, *([1] * (x.dim() - 2))), y, step, batch_size)
    if not step > 0:
        raise ValueError(f"step must be positive; got {step!r}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},); got {tuple(y.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    was_training = model.training
    model.eval()
    out = []
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb = xb.detach().to(device, torch.float32).requires_grad_(True)
            with torch.enable_grad():
                logits = model(xb)
                (g,) = torch.autograd.grad(F.cross_entropy(logits, yb.to(device), reduction="sum"), xb)
            with torch.no_grad():
                gn = g.flatten(1).norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
                x2 = xb + step * g / gn.view(-1, *([1] * (g.dim() - 1)))
                num = (model(x2) - logits).flatten(1).norm(dim=1)
                den = (x2 - xb).flatten(1).norm(dim=1)
                out.append(torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(num)))
    finally:
        model.train(was_training)
    return torch.cat(out).to(x.device)
