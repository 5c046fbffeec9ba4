"""Evaluation of a trained model: test predictions, and the end-of-trial metrics of docs/design.md.

Every metric is computed by ``svconv.metrics``; this module only gathers the inputs (test logits,
subsets of test images) and names the results as the ``trials`` columns.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from svconv.results.schema import LAYERS
from svconv.training.batches import DeviceBatches

@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` (float32) and labels ``(N,)`` of every batch of ``loader``, in eval mode, on ``device``."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for x, y in loader:
            logits.append(model(x.to(device, non_blocking=True)).float())
            labels.append(y.to(device, non_blocking=True))
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float((logits.argmax(1) == labels).float().mean()) if labels.numel() else math.nan


def final_metrics(
    model: nn.Module,
    test: DeviceBatches,
    input_shape: tuple[int, ...],
    *,
    dataset: str,
    device: torch.device,
    aa_n: int = 0,
    aa_radii: str = "36/255,0.5",
    emp_lip_n: int = 256,
    data_root: str | None = None,
    progress: bool | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The end-of-trial metrics as ``trials`` columns, and the per-layer ``layers`` rows.

    Accuracies and ECE in percent. ``lipschitz_bound`` is the certified bound of the whole network,
    used for the certified accuracies; AutoAttack (L2, at each radius of ``aa_radii``, pixel units,
    ``svconv.metrics.autoattack.AUTOATTACK_RADII``) runs on the first ``aa_n`` test images (0 skips it) and
    ``aa_clean_acc`` is the clean accuracy on those same images; the empirical Lipschitz ratios are per image
    on the first ``emp_lip_n``, in pixel units (``emp_lip_*``) and in the units of the inputs after the
    model's ``Normalize`` (``emp_lip_*_normalized``, the papers' "Lip."); corruption accuracy for
    ``cifar10`` / ``cifar100`` when CIFAR-10-C / CIFAR-100-C is present under ``data_root``.
    """
    from svconv import metrics

    model.eval()
    logits, labels = predict(model, test, device)
    from svconv.metrics.lipschitz_bound import walk_bound

    # per-leaf bounds once: they give the network bound and the layers rows (SOC / large-conv bounds are costly)
    leaves = metrics.leaf_lipschitz_bounds(model, input_shape)
    bound = walk_bound(model, input_shape, lambda name, _m, _s: leaves[name])
    out: dict[str, Any] = {
        "clean_acc": accuracy(logits, labels),
        "ece": float(metrics.ece(logits, labels)),
        "lipschitz_bound": bound,
    }
    out.update({k: float(v) for k, v in metrics.certified_accuracies(logits, labels, bound).items()})

    if aa_n > 0:
        x, y = test.first(aa_n)
        with torch.no_grad():
            out["aa_clean_acc"] = accuracy(model(x).float(), y)
        from svconv.metrics.autoattack import AUTOATTACK_RADII, parse_aa_radii

        for name in parse_aa_radii(aa_radii):
            column, eps = AUTOATTACK_RADII[name]
            out[column] = float(metrics.autoattack_accuracy(model, x, y, eps))

    if emp_lip_n > 0:
        x, y = test.first(emp_lip_n)
        from svconv.models.blocks import input_std

        std = input_std(model)
        for suffix, scale in (("", None), ("_normalized", std if std is not None else torch.ones(x.shape[1]))):
            ratios = torch.as_tensor(metrics.empirical_lipschitz(model, x, y, input_std=scale)).detach().flatten().double().cpu()
            out[f"emp_lip_hist{suffix}"] = ratios.tolist()
            out[f"emp_lip_max{suffix}"] = float(ratios.max()) if ratios.numel() else None

    from svconv.data.cifar_c import FOLDERS, find_cifar_c

    if dataset in FOLDERS and find_cifar_c(data_root, dataset)[0] is not None:  # absent: no warning, the column stays null
        out["corruption_acc"] = float(metrics.corruption_accuracy(model, data_root, progress=progress, dataset=dataset))

    # keep the columns the ``layers`` schema has (the metric may return extra diagnostics)
    columns = set(LAYERS.names)
    layers = [{k: v for k, v in row.items() if k in columns} for row in metrics.layer_spectral_norms(model, input_shape, bounds=leaves)]
    return out, layers
