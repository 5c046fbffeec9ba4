"""Empirical Lipschitz ratios (Senderovich et al. 2022, App. C.1, after Sanyal et al. 2020): a lower bound per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def empirical_lipschitz(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: float = 0.5, batch_size: int = 256
) -> torch.Tensor:
    """Per-image ratios ``||f(x) - f(x')||_2 / ||x - x'||_2`` with ``x' = x + step * g / ||g||_2``.

    ``g`` is the gradient of the cross-entropy loss at ``x`` (an L2 FGSM step of radius ``step``);
    ``x'`` is not clipped to [0, 1] (the ratio bounds the Lipschitz constant wherever it is taken).
    Every ratio is a lower bound on the network's Lipschitz constant; their maximum is the seed's
    "Lip." column. The model runs in eval mode (its mode is restored); ``x`` ``(N, C, H, W)``,
    ``y`` ``(N,)``. Images with a zero gradient give ratio 0. Returns ``(N,)`` float32 on ``x``'s device.
    """
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
