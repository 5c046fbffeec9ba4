"""Datasets: the fixed mnist5k split, CIFAR read from a real torchvision-format folder (written here in
the official pickle format), clear errors for missing files and unknown names, CIFAR-10-C and
CIFAR-100-C ``.npy`` files (and a CIFAR-100 trial that reads them), the synthetic set and the CIFAR augmentation. Nothing is downloaded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from svconv.data import DATASETS, DatasetNotFoundError, augment_batch, check_dataset, load_dataset
from svconv.data.cifar_c import CORRUPTIONS, find_cifar_c, load_corruption
from svconv.data.mnist5k import _arrays, split_indices
from svconv.training.batches import DeviceBatches


def _write_cifar(root, name: str, per_file: int, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write a tiny CIFAR folder in torchvision's format (pickled dicts of ``data`` N x 3072 uint8 and labels)."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, files, key, classes = "cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"], "labels", 10
    else:
        folder, files, key, classes = "cifar-100-python", ["train", "test"], "fine_labels", 100
    (root / folder).mkdir(parents=True)
    written = {}
    for f in files:
        data = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=per_file).tolist()
        # the official files are Python-2 pickles of str keys (read back with encoding="latin1")
        with open(root / folder / f, "wb") as fh:
            pickle.dump({"data": data, key: labels, "batch_label": f}, fh, protocol=2)
        written[f] = (data, labels)
    return written


def test_cifar10_is_read_from_a_torchvision_folder(tmp_path):
    written = _write_cifar(tmp_path, "cifar10", per_file=3)
    bundle = load_dataset("cifar10", data_root=str(tmp_path), augment=True)
    assert len(bundle.train) == 15 and len(bundle.test) == 3
    assert bundle.num_classes == 10 and bundle.input_shape == (3, 32, 32)
    x, y = bundle.train.tensors
    # data rows are channel-major: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    data, labels = written["data_batch_2"]
    i = 3 + 1  # second image of the second file
    assert torch.equal(x[i, 1, 5, 7], torch.tensor(data[1, 1024 + 5 * 32 + 7] / 255, dtype=torch.float32))
    assert y[i] == labels[1]
    xt, yt = bundle.test.tensors
    assert torch.equal(xt * 255, torch.from_numpy(written["test_batch"][0]).float().view(3, 3, 32, 32))
    assert yt.tolist() == written["test_batch"][1]
    assert bundle.train.augment and not bundle.test.augment
    assert len(load_dataset("cifar10", data_root=str(tmp_path), n_train=4, n_test=2).train) == 4


def test_cifar100_uses_the_fine_labels(tmp_path):
    written = _write_cifar(tmp_path, "cifar100", per_file=4)
    bundle = load_dataset("cifar100", data_root=tmp_path)
    assert bundle.num_classes == 100 and bundle.train.labels.tolist() == written["train"][1]
    assert bundle.test.labels.tolist() == written["test"][1]


def test_a_missing_cifar_folder_says_which_files_go_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", data_root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert all(f in msg for f in ("data_batch_1", "data_batch_5", "test_batch")) and "never downloads" in msg
    assert isinstance(err.value, ValueError)  # the CLI reports it as bad input

    with pytest.raises(DatasetNotFoundError, match="--data-root.*cifar-100-python/"):
        load_dataset("cifar100", data_root=None)

    written = _write_cifar(tmp_path, "cifar10", per_file=1)  # one file removed: named alone as missing
    assert written
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing data_batch_3 in"):
        load_dataset("cifar10", data_root=tmp_path)


def test_unknown_datasets_are_refused_with_the_known_ones():
    with pytest.raises(ValueError) as err:
        load_dataset("imagenet")
    assert "imagenet" in str(err.value) and all(name in str(err.value) for name in DATASETS)
    with pytest.raises(ValueError, match="evaluation set"):
        check_dataset("cifar10c")
    with pytest.raises(ValueError, match="evaluation set .*cifar100 models"):
        check_dataset("cifar100c")
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("synthetic", n_train=0)


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    images, labels = _arrays()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    train, test = split_indices(labels)
    again = split_indices(labels)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])  # fixed
    assert len(train) == 4000 and len(test) == 1000
    assert not set(train.tolist()) & set(test.tolist())  # disjoint
    assert torch.bincount(labels[train], minlength=10).tolist() == [400] * 10
    assert torch.bincount(labels[test], minlength=10).tolist() == [100] * 10
    # the file is sorted by digit; the splits are not: prefixes (n_train, n_test) hold every class equally
    assert torch.bincount(labels[train[:100]], minlength=10).tolist() == [10] * 10
    assert torch.bincount(labels[test[:30]], minlength=10).tolist() == [3] * 10

    bundle = load_dataset("mnist5k", n_train=50, n_test=20, seed=7)  # the seed does not move the split
    assert torch.equal(bundle.train.images, images[train[:50]]) and torch.equal(bundle.test.labels, labels[test[:20]])
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10 and not bundle.train.augment
    x, _ = bundle.train.tensors
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert 0.05 < bundle.mean[0] < 0.3 and 0.2 < bundle.std[0] < 0.45  # MNIST's usual statistics


def test_synthetic_is_deterministic_per_seed():
    a, b, c = (load_dataset("synthetic", n_train=32, n_test=8, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert a.input_shape == (3, 8, 8) and a.num_classes == 4 and len(a.train) == 32
    assert torch.bincount(a.train.labels).tolist() == [8, 8, 8, 8]


def test_cifar_augmentation_is_a_padded_crop_and_a_flip():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 6, 6)
    gen = torch.Generator().manual_seed(1)
    out = augment_batch(x, padding=2, generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(x.shape[0]):
        windows = [padded[i, :, a : a + 6, b : b + 6] for a in range(5) for b in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or mirrored, i
        flipped += mirrored and not plain
    assert 10 < flipped < 54  # about half flipped
    assert not torch.equal(out, x) and torch.equal(augment_batch(x, padding=0, flip=False), x)

    # the training batches of an augmented set are augmented; the test batches and first() are not
    from svconv.data import ImageTensorDataset

    data = ImageTensorDataset((x * 255).to(torch.uint8), torch.zeros(64, dtype=torch.int64), augment=True)
    plain_x, _ = data.tensors
    first, _ = DeviceBatches(data, 64, "cpu").first(64)
    assert torch.equal(first, plain_x)
    (batch, _), = list(DeviceBatches(data, 64, "cpu"))
    assert not torch.equal(batch, plain_x)


@pytest.mark.parametrize("dataset, name, classes", [("cifar10", "CIFAR-10-C", 10), ("cifar100", "CIFAR-100-C", 100)])
def test_cifar_c_npy_files(tmp_path, dataset, name, classes):
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5 * 4, 32, 32, 3), dtype=np.uint8)  # 4 images per severity
    labels = rng.integers(0, classes, size=20)
    np.save(folder / "fog.npy", images)
    np.save(folder / "labels.npy", labels)
    found, reason = find_cifar_c(tmp_path, dataset, corruptions=("fog",))
    assert found == folder and reason == ""
    missing, reason = find_cifar_c(tmp_path, dataset)  # the 15 corruptions: most are missing
    assert missing is None and "gaussian_noise.npy" in reason and str(folder) in reason
    assert find_cifar_c(tmp_path / "nowhere", dataset)[0] is None
    other = "cifar100" if dataset == "cifar10" else "cifar10"
    assert find_cifar_c(tmp_path, other, corruptions=("fog",))[0] is None  # each set in its own folder
    with pytest.raises(ValueError, match="dataset must be one of cifar10, cifar100"):
        find_cifar_c(tmp_path, "mnist5k")

    x, y = load_corruption(folder, "fog", severity=3, n=3)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x * 255, torch.from_numpy(images[8:11]).permute(0, 3, 1, 2).float())
    assert y.tolist() == labels[8:11].tolist()
    with pytest.raises(ValueError, match="severity"):
        load_corruption(folder, "fog", severity=6)
    np.save(folder / "labels.npy", labels[:5])
    with pytest.raises(ValueError, match="one label per image"):
        load_corruption(folder, "fog", severity=1)


def _write_cifar_c(root, name: str, per_severity: int, classes: int, seed: int = 0) -> None:
    """The official layout: ``<name>/<corruption>.npy`` (5 severities x N, 32, 32, 3) uint8 and ``labels.npy``."""
    rng = np.random.default_rng(seed)
    (root / name).mkdir()
    for c in CORRUPTIONS:
        np.save(root / name / f"{c}.npy", rng.integers(0, 256, size=(5 * per_severity, 32, 32, 3), dtype=np.uint8))
    np.save(root / name / "labels.npy", rng.integers(0, classes, size=5 * per_severity))


def test_a_cifar100_trial_reports_its_cifar100c_accuracy(tmp_path):
    """CIFAR-100 and CIFAR-100-C written in their official formats; the trial's corruption column is the
    accuracy of its model on them (Senderovich et al. 2022, Tab. 4's CC column); CIFAR-10-C alone is ignored."""
    from svconv.config import TrialConfig
    from svconv.metrics import corruption_accuracy
    from svconv.trial import run_trial

    _write_cifar(tmp_path, "cifar100", per_file=32)
    tiny = dict(dataset="cifar100", data_root=str(tmp_path), n_train=32, n_test=16, batch_size=16, epochs=1, emp_lip_n=0,
                device="cpu", aa_n=0)  # fmt: skip
    _write_cifar_c(tmp_path, "CIFAR-10-C", per_severity=2, classes=10)
    row = run_trial(TrialConfig(**tiny), tmp_path / "res", progress=False)
    assert row["status"] == "ok" and row.get("corruption_acc") is None
    _write_cifar_c(tmp_path, "CIFAR-100-C", per_severity=2, classes=100, seed=1)
    row = run_trial(TrialConfig(**tiny, seed=1), tmp_path / "res", progress=False)
    assert row["status"] == "ok" and 0 <= row["corruption_acc"] <= 100

    # the metric itself, on a model whose predictions are known: always class 7
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 100))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].bias[7] = 1.0
    np.save(tmp_path / "CIFAR-100-C" / "labels.npy", np.array([7, 3, 7, 7, 50, 7, 99, 7, 7, 1]))  # fine labels 0..99
    # per severity (2 images each): 50, 100, 50, 50, 50 % correct; the same labels for every corruption
    assert corruption_accuracy(model, tmp_path, dataset="cifar100") == pytest.approx(60.0)
    assert corruption_accuracy(model, tmp_path, dataset="cifar100", corruptions=("fog",), n_per_severity=1) == pytest.approx(60.0)
