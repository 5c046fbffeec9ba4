"""Batches of an in-memory image dataset, cut and augmented on the training device.

``svconv.data`` keeps every image in one tensor (``ImageTensorDataset``); sending that tensor to the
device once and indexing batches there beats a DataLoader that collates single items by far on a GPU
(and costs nothing on the CPU). Other datasets go through a plain DataLoader.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class DeviceBatches:
    """Iterable of ``(x float32 (B, C, H, W) in [0, 1], y int64 (B,))`` batches on ``device``.

    Args:
        dataset: an ``svconv.data.ImageTensorDataset`` (``images``, ``labels``, ``augment``) or any
            map-style dataset of ``(x, y)`` pairs (then a DataLoader collates them).
        batch_size: images per batch (the last batch may be smaller).
        device: where batches are made; the image tensor is copied there once.
        shuffle: draw a permutation per iteration from ``generator`` (a CPU generator).
        augment: apply the dataset's augmentation (random crop + flip, on ``device``, drawing from the
            global generator of ``device``); default: the dataset's own ``augment`` flag.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool | None = None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = shuffle
        self.generator = generator
        self.in_memory = hasattr(dataset, "images") and hasattr(dataset, "labels")
        self.augment = bool(getattr(dataset, "augment", False)) if augment is None else augment
        if self.in_memory:
            self.images = dataset.images.to(self.device)
            self.labels = dataset.labels.to(self.device)

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.in_memory:
            loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, generator=self.generator)
            for x, y in loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        from svconv.data import augment_batch

        n = self.images.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx]
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            if self.augment:
                x = augment_batch(x)
            yield x, self.labels[idx]

    def first(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` items (fewer if the set is smaller), unaugmented, in dataset order."""
        xs, ys = [], []
        seen = 0
        for x, y in DeviceBatches(self.dataset, self.batch_size, self.device, shuffle=False, augment=False):
            xs.append(x)
            ys.append(y)
            seen += y.shape[0]
            if seen >= n:
                break
        return torch.cat(xs)[:n], torch.cat(ys)[:n]
