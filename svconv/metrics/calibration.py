"""Expected calibration error (Guo et al. 2017)."""

from __future__ import annotations

import torch


def ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error in percent, on the top softmax probability.

    The confidences fall in ``n_bins`` equal-width bins ``(k/n_bins, (k+1)/n_bins]`` (the first also
    takes 0); ECE = ``100 * sum_b (|b| / N) * |accuracy(b) - mean confidence(b)|``.

    Args:
        logits: ``(N, classes)`` on any device. labels: ``(N,)`` integer class indices.
        n_bins: number of bins, >= 1.
    """
    _check(logits, labels)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1; got {n_bins!r}")
    probs = torch.softmax(logits.detach().double(), dim=1)
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp_(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64, device=logits.device).index_add_(0, bins, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).index_add_(0, bins, conf)
    acc_sum = torch.zeros_like(count).index_add_(0, bins, correct)
    return float(100 * (conf_sum - acc_sum).abs().sum() / logits.shape[0])


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be (N, classes) with N >= 1; got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},); got {tuple(labels.shape)}")
