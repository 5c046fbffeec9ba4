"""Optimisers and learning-rate schedules of a trial, stepped once per epoch.

Schedules (``TrialConfig.schedule``):
- ``multistep``: the seed's WRN schedule (Gouk et al. 2021): lr x 0.1 after 30 %, 60 % and 80 % of the
  epochs (60, 120 and 160 of 200);
- ``cosine``: cosine annealing from ``lr`` to 0 over the epochs;
- ``constant``: ``lr`` throughout;
- ``aol``: AOL's schedule (Prach & Lampert 2022): lr x 0.1 after 90 %, 99 % and 99.9 % of the epochs
  (900, 990 and 999 of 1000).
"""

from __future__ import annotations

import torch
from torch import nn

from svconv.config import OPTIMIZERS, SCHEDULES

#: Fractions of the epochs after which ``multistep`` multiplies the learning rate by ``MULTISTEP_GAMMA``.
MULTISTEP_FRACTIONS = (0.3, 0.6, 0.8)
MULTISTEP_GAMMA = 0.1
#: The same for ``aol`` (the authors' ``lr_drops``).
AOL_FRACTIONS = (0.9, 0.99, 0.999)


def build_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """SGD (with momentum; ``sgd-nesterov``: Nesterov's, as AOL's code) or Adam over the trainable parameters of ``model``.

    ``weight_decay`` is the L2 coefficient of both (Adam's classic, coupled form).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name in ("sgd", "sgd-nesterov"):
        nesterov = name == "sgd-nesterov"
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def multistep_milestones(epochs: int, fractions: tuple[float, ...] = MULTISTEP_FRACTIONS) -> list[int]:
    """Epoch counts after which ``multistep`` (or ``aol``, with ``AOL_FRACTIONS``) decays: distinct, >= 1 and < ``epochs``."""
    return sorted({m for m in (round(f * epochs) for f in fractions) if 1 <= m < epochs})


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch schedule ``name`` over ``epochs`` epochs (call ``.step()`` once after each epoch)."""
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, multistep_milestones(epochs), gamma=MULTISTEP_GAMMA)
    if name == "aol":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, multistep_milestones(epochs, AOL_FRACTIONS), gamma=MULTISTEP_GAMMA)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if name == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {name!r}")


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])
