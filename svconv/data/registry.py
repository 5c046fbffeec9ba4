"""Dataset names and the one loader that dispatches on them."""

from __future__ import annotations

from pathlib import Path

from svconv.data.base import DatasetBundle, check_subset_size

#: Training datasets (``TrialConfig.dataset``).
DATASETS = ("mnist5k", "cifar10", "cifar100", "synthetic")
#: Evaluation-only sets, read by metrics (``svconv.metrics.corruption_accuracy``), not trained on.
EVAL_SETS = ("cifar10c", "cifar100c")


def check_dataset(name: str) -> str:
    """Return ``name`` if it is a training dataset; ValueError naming the known ones otherwise."""
    if name in DATASETS:
        return name
    if name in EVAL_SETS:
        raise ValueError(
            f"dataset {name!r} is an evaluation set (corruption accuracy of {name[:-1]} models), not a "
            f"training dataset; dataset must be one of {', '.join(DATASETS)}"
        )
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")


def check_data_files(name: str, data_root: str | Path | None = None) -> None:
    """Check that the files of training dataset ``name`` are under ``data_root``, loading nothing:
    :class:`svconv.data.DatasetNotFoundError` says which files go where. ``mnist5k`` (shipped in a
    package) and ``synthetic`` (generated) need none."""
    check_dataset(name)
    if name in ("cifar10", "cifar100"):
        from svconv.data.cifar import cifar_files

        cifar_files(name, data_root)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    augment: bool = True,
    seed: int = 0,
) -> DatasetBundle:
    """Load a training dataset into memory.

    Args:
        name: one of :data:`DATASETS`.
        data_root: folder with the CIFAR files (``cifar-10-batches-py/``, ``cifar-100-python/``);
            unused by ``mnist5k`` and ``synthetic``. Nothing is ever downloaded.
        n_train, n_test: keep the first n images of each split (None: all). For ``synthetic``, the
            number of images generated (defaults 512 / 256).
        augment: random crop + flip on the CIFAR training set (other datasets are not augmented).
        seed: the generator of the ``synthetic`` set; the mnist5k split and CIFAR are fixed.

    Returns:
        :class:`DatasetBundle`; items are ``(x float32 (C, H, W) in [0, 1], y int64)``.
    """
    check_dataset(name)
    check_subset_size(n_train, "n_train")
    check_subset_size(n_test, "n_test")
    if name == "synthetic":
        from svconv.data.synthetic import N_TEST, N_TRAIN, load_synthetic

        return load_synthetic(n_train or N_TRAIN, n_test or N_TEST, seed=seed)
    if name == "mnist5k":
        from svconv.data.mnist5k import load_mnist5k

        bundle = load_mnist5k()
    else:
        from svconv.data.cifar import load_cifar

        bundle = load_cifar(name, data_root, augment=augment)
    return DatasetBundle(
        name=bundle.name,
        train=bundle.train.subset(n_train),
        test=bundle.test.subset(n_test),
        num_classes=bundle.num_classes,
        input_shape=bundle.input_shape,
        mean=bundle.mean,
        std=bundle.std,
    )
