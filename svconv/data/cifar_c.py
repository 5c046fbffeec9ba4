"""CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich 2019) from their official ``.npy`` files: evaluation sets only.

Both releases have the same layout. Expected under ``data_root`` (the official tarball, ``CIFAR-10-C.tar``
or ``CIFAR-100-C.tar``, extracted there): ``CIFAR-10-C/<corruption>.npy`` (50,000 x 32 x 32 x 3 uint8:
severities 1..5, 10,000 test images each, in that order) and ``CIFAR-10-C/labels.npy`` (50,000 labels;
CIFAR-100-C: the fine labels 0..99), likewise ``CIFAR-100-C/``. A folder holding the files directly is
accepted too. Files are memory-mapped, so reading a few images per severity is cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: training dataset -> the folder of its corrupted test set (the official tarball's name)
FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
#: The 15 corruptions of the benchmark (the 4 extra files of the release are left out by default).
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
PER_SEVERITY = 10_000


def corrupted_folder(dataset: str) -> str:
    """The folder name of ``dataset``'s corrupted test set ("CIFAR-10-C"); ValueError naming the datasets that have one."""
    if dataset not in FOLDERS:
        raise ValueError(f"dataset must be one of {', '.join(FOLDERS)} (the datasets with a -C set); got {dataset!r}")
    return FOLDERS[dataset]


def find_cifar_c(
    data_root: str | Path | None, dataset: str = "cifar10", corruptions: tuple[str, ...] = CORRUPTIONS
) -> tuple[Path | None, str]:
    """``(folder, "")`` when every file of ``dataset``'s corrupted set is present, else ``(None, reason)``
    naming what is missing and where. ``dataset``: ``cifar10`` (CIFAR-10-C) or ``cifar100`` (CIFAR-100-C)."""
    name = corrupted_folder(dataset)
    if data_root is None:
        return None, f"no data root given ({name} is read from DATA_ROOT/{name}/*.npy)"
    root = Path(data_root).expanduser()
    for folder in (root / name, root):
        if (folder / "labels.npy").is_file():
            missing = [f"{c}.npy" for c in corruptions if not (folder / f"{c}.npy").is_file()]
            if missing:
                return None, f"{name} in {folder} lacks {', '.join(missing)}"
            return folder, ""
    return None, (
        f"{name} not found: expected labels.npy and {len(corruptions)} corruption files "
        f"(<corruption>.npy, e.g. {corruptions[0]}.npy) in {root / name}/ (the official tarball extracted there)"
    )


def load_corruption(
    folder: str | Path, corruption: str, severity: int, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(n, 3, 32, 32)`` float32 in [0, 1] and labels int64 of one corruption at one severity.

    ``n`` caps the number of images (the first n of the 10,000); None reads all of them.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}; got {severity!r}")
    folder = Path(folder)
    data = np.load(folder / f"{corruption}.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy", mmap_mode="r")
    per = data.shape[0] // len(SEVERITIES)
    if data.shape[0] != per * len(SEVERITIES) or data.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"{folder / (corruption + '.npy')} must have shape (5 * N, 32, 32, 3); got {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{folder / 'labels.npy'} must hold one label per image ({data.shape[0]}); got shape {labels.shape}")
    count = per if n is None else min(n, per)
    start = (severity - 1) * per
    x = torch.from_numpy(np.array(data[start : start + count])).permute(0, 3, 1, 2)  # a writable copy of the mapped rows
    y = torch.from_numpy(np.asarray(labels[start : start + count]).astype(np.int64))
    return x.float().div_(255), y
