"""Certified robust accuracy from a margin and a Lipschitz bound (Tsuzuku et al. 2018; as in Senderovich et al. 2022)."""

from __future__ import annotations

import math

import torch

from svconv.metrics.calibration import _check

#: Radii of the results schema: column name -> L2 radius on inputs in [0, 1].
CERTIFIED_EPS: dict[str, float] = {"cra_36": 36 / 255, "cra_72": 72 / 255, "cra_108": 108 / 255, "cra_255": 1.0}


def margins(logits: torch.Tensor) -> torch.Tensor:
    """Top logit minus the runner-up, ``(N,)``."""
    top2 = logits.detach().topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def certified_accuracy(logits: torch.Tensor, labels: torch.Tensor, lipschitz: float, eps: float) -> float:
    """Percent of inputs classified correctly with ``margin > sqrt(2) * lipschitz * eps``.

    ``lipschitz`` must be an upper bound on the L2 Lipschitz constant of the logits map; then no
    perturbation of L2 norm ``eps`` changes these predictions. ``eps = 0`` gives the clean accuracy
    (strictly positive margin). logits ``(N, classes >= 2)``, labels ``(N,)``.
    """
    _check(logits, labels)
    if logits.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes; got {logits.shape[1]}")
    if not lipschitz >= 0 or not math.isfinite(lipschitz):
        raise ValueError(f"lipschitz must be a finite number >= 0; got {lipschitz!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    correct = logits.argmax(dim=1) == labels
    ok = correct & (margins(logits).double() > math.sqrt(2) * lipschitz * eps)
    return float(100 * ok.double().mean())


def certified_accuracies(logits: torch.Tensor, labels: torch.Tensor, lipschitz: float) -> dict[str, float]:
    """:func:`certified_accuracy` at every radius of :data:`CERTIFIED_EPS`, keyed by schema column."""
    return {key: certified_accuracy(logits, labels, lipschitz, eps) for key, eps in CERTIFIED_EPS.items()}
