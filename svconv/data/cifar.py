"""CIFAR-10 and CIFAR-100 from a local folder in torchvision's format; never downloaded.

Expected under ``data_root`` (what ``torchvision.datasets.CIFAR10/100(root, download=True)`` leaves,
i.e. the official python tarballs extracted there):

- ``cifar-10-batches-py/``: ``data_batch_1`` ... ``data_batch_5``, ``test_batch``
- ``cifar-100-python/``: ``train``, ``test``

Each file is a pickle with ``data`` (N x 3072 uint8, channel-major) and ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100). Mean and std are the usual per-channel training-set statistics.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from svconv.data.base import DatasetBundle, ImageTensorDataset


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset's files are not where they should be (a ValueError too, so CLIs report it as bad input)."""


LAYOUT: dict[str, dict] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": "labels",
        "num_classes": 10,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": "fine_labels",
        "num_classes": 100,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
    },
}


def cifar_files(name: str, data_root: str | Path | None) -> tuple[list[Path], list[Path]]:
    """Paths of the training and test files; DatasetNotFoundError saying which files go where if any is missing."""
    spec = LAYOUT[name]
    if data_root is None:
        raise DatasetNotFoundError(
            f"dataset {name!r} needs a data root (--data-root DIR): put the files "
            f"{', '.join(spec['train'] + spec['test'])} in DIR/{spec['folder']}/ "
            f"(extract {spec['url']} into DIR; svconv never downloads)"
        )
    folder = Path(data_root).expanduser() / spec["folder"]
    train = [folder / f for f in spec["train"]]
    test = [folder / f for f in spec["test"]]
    missing = [p.name for p in train + test if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r}: missing {', '.join(missing)} in {folder}/; expected the files "
            f"{', '.join(spec['train'] + spec['test'])} there (torchvision's format: extract "
            f"{spec['url']} into {Path(data_root).expanduser()}; svconv never downloads)"
        )
    return train, test


def _read(paths: list[Path], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    data, labels = [], []
    for p in paths:
        with open(p, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry[label_key])
    images = torch.from_numpy(np.concatenate(data)).reshape(-1, 3, 32, 32)
    return images, torch.tensor(labels, dtype=torch.int64)


def load_cifar(name: str, data_root: str | Path | None, augment: bool = True) -> DatasetBundle:
    """CIFAR-10 (50,000 / 10,000) or CIFAR-100 (50,000 / 10,000), ``(3, 32, 32)`` in [0, 1].

    ``augment``: random crop (padding 4) and horizontal flip on the training set, on the fly.
    """
    spec = LAYOUT[name]
    train_files, test_files = cifar_files(name, data_root)
    xtr, ytr = _read(train_files, spec["label_key"])
    xte, yte = _read(test_files, spec["label_key"])
    return DatasetBundle(
        name=name,
        train=ImageTensorDataset(xtr, ytr, augment=augment),
        test=ImageTensorDataset(xte, yte),
        num_classes=spec["num_classes"],
        input_shape=(3, 32, 32),
        mean=spec["mean"],
        std=spec["std"],
    )
