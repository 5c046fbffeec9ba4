"""The container a dataset loader returns, and the in-memory image dataset with on-the-fly augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class ImageTensorDataset(Dataset):
    """Images preloaded as one tensor; items are ``(x float32 (C, H, W) in [0, 1], y int64)``.

    ``images`` is stored as uint8 ``(N, C, H, W)`` (4x smaller than float) or float32 in [0, 1];
    ``augment`` applies the standard CIFAR augmentation per item (random crop with 4 pixels of zero
    padding, horizontal flip with probability 1/2), drawing from torch's global generator, which the
    DataLoader seeds per worker. ``tensors`` gives ``(x float32, y int64)`` of all items unaugmented,
    for evaluation in one batch or batch-level augmentation on the GPU (:func:`augment_batch`).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool = False):
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be (N,) with N = {images.shape[0]}; got shape {tuple(labels.shape)}")
        if images.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"images must be uint8 or float32; got {images.dtype}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.augment = augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255) if x.dtype == torch.uint8 else x.float()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._float(self.images[i])
        if self.augment:
            x = augment_batch(x.unsqueeze(0))[0]
        return x, self.labels[i]

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float32 ``(N, C, H, W)`` in [0, 1] and labels int64 ``(N,)``, without augmentation."""
        return self._float(self.images), self.labels

    def subset(self, n: int | None) -> "ImageTensorDataset":
        """The first ``n`` items (all of them when ``n`` is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        return ImageTensorDataset(self.images[:n], self.labels[:n], self.augment)


def augment_batch(
    x: torch.Tensor, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop (zero padding ``padding`` pixels) and horizontal flip of each image of ``x`` (B, C, H, W).

    Runs on ``x``'s device; random offsets come from ``generator`` (a generator on ``x``'s device)
    or torch's global generator. Equivalent to torchvision's ``RandomCrop(H, padding)`` +
    ``RandomHorizontalFlip()``.
    """
    b, _, h, w = x.shape
    out = x
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        out = xp[bidx, cidx, rows, cols]
    if flip:
        mask = torch.rand(b, device=x.device, generator=generator) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


@dataclass(frozen=True)
class DatasetBundle:
    """A loaded dataset: train and test sets, class count, one input's shape, per-channel mean and std.

    Inputs stay in [0, 1]; models normalise with ``svconv.models.blocks.Normalize``, from these statistics as
    their family's paper does (``svconv.models.preprocessing``).
    """

    name: str
    train: ImageTensorDataset
    test: ImageTensorDataset
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, C, H, W)`` images (uint8 or [0, 1] float), on the [0, 1] scale."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255
    x = x.transpose(0, 1).reshape(images.shape[1], -1).double()
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def check_subset_size(value: int | None, name: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be None or an int >= 1; got {value!r}")
    return value

