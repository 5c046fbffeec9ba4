"""Accuracy under common corruptions: CIFAR-10-C / CIFAR-100-C, mean over corruptions and severities."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from svconv.data.cifar_c import CORRUPTIONS, SEVERITIES, corrupted_folder, find_cifar_c, load_corruption


def corruption_accuracy(
    model: nn.Module,
    data_root: str | Path | None,
    n_per_severity: int | None = None,
    corruptions: tuple[str, ...] = CORRUPTIONS,
    batch_size: int = 500,
    progress: bool = False,
    dataset: str = "cifar10",
) -> float | None:
    """Mean accuracy in percent over ``corruptions`` x severities 1..5 of ``dataset``'s corrupted test set
    (``cifar10``: CIFAR-10-C, ``cifar100``: CIFAR-100-C), or None if absent.

    When the files are missing, returns None and emits a ``UserWarning`` saying what is missing and
    where it should be (:func:`svconv.data.cifar_c.find_cifar_c` gives the same reason). Every
    (corruption, severity) cell weighs the same. ``n_per_severity`` caps the images per cell (the
    first n of 10,000) for speed; None uses all 750,000 images of the 15 corruptions. The model runs
    in eval mode (mode restored), on its parameters' device; it gets inputs in [0, 1], ``(B, 3, 32, 32)``.
    """
    if n_per_severity is not None and (not isinstance(n_per_severity, int) or n_per_severity < 1):
        raise ValueError(f"n_per_severity must be None or an int >= 1; got {n_per_severity!r}")
    folder, reason = find_cifar_c(data_root, dataset, corruptions)
    if folder is None:
        warnings.warn(f"corruption accuracy skipped: {reason}", stacklevel=2)
        return None
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    accs = []
    cells = [(c, s) for c in corruptions for s in SEVERITIES]
    try:
        with torch.no_grad():
            for corruption, severity in tqdm(cells, desc=corrupted_folder(dataset), disable=not progress):
                x, y = load_corruption(folder, corruption, severity, n_per_severity)
                correct = 0
                for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
                    pred = model(xb.to(device, non_blocking=True)).argmax(1)
                    correct += int((pred == yb.to(device)).sum())
                accs.append(100 * correct / len(y))
    finally:
        model.train(was_training)
    return float(sum(accs) / len(accs))
