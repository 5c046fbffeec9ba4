"""``synthetic``: a tiny deterministic, learnable image set for fast tests.

Each of 4 classes has a fixed smooth prototype image ``(3, 8, 8)`` in [0.2, 0.8]; an item is its
class prototype plus Gaussian noise (std 0.1), clipped to [0, 1]. A linear model separates the
classes; a small conv net learns them within an epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from svconv.data.base import DatasetBundle, ImageTensorDataset, channel_stats

SHAPE = (3, 8, 8)
NUM_CLASSES = 4
N_TRAIN = 512
N_TEST = 256
NOISE = 0.1


def _prototypes(gen: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(NUM_CLASSES, SHAPE[0], 3, 3, generator=gen)
    smooth = F.interpolate(coarse, size=SHAPE[1:], mode="bilinear", align_corners=True)
    return 0.2 + 0.6 * smooth


def _sample(protos: torch.Tensor, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % NUM_CLASSES  # balanced
    labels = labels[torch.randperm(n, generator=gen)]
    x = protos[labels] + NOISE * torch.randn(n, *SHAPE, generator=gen)
    return x.clamp_(0, 1), labels


def load_synthetic(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0) -> DatasetBundle:
    """``n_train`` / ``n_test`` images ``(3, 8, 8)`` in [0, 1], 4 balanced classes; same ``seed``, same data."""
    gen = torch.Generator().manual_seed(seed)
    protos = _prototypes(gen)
    xtr, ytr = _sample(protos, n_train, gen)
    xte, yte = _sample(protos, n_test, gen)
    mean, std = channel_stats(xtr)
    return DatasetBundle(
        name="synthetic",
        train=ImageTensorDataset(xtr, ytr),
        test=ImageTensorDataset(xte, yte),
        num_classes=NUM_CLASSES,
        input_shape=SHAPE,
        mean=mean,
        std=std,
    )
