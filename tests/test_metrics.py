"""Metrics against hand-computed values: ECE on crafted predictions, certified accuracy of a linear model
with a known Lipschitz constant (checked against its exact robustness radius), empirical Lipschitz
ratios, AutoAttack between the certified and the clean accuracy, corruption accuracy on real .npy files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from svconv.metrics import (
    CERTIFIED_EPS,
    autoattack_accuracy,
    certified_accuracies,
    certified_accuracy,
    corruption_accuracy,
    ece,
    empirical_lipschitz,
    network_lipschitz_bound,
)
from svconv.models.blocks import Normalize, input_std


def _logits(top_prob: list[float], predicted: list[int], classes: int = 2) -> torch.Tensor:
    """Logits whose softmax gives probability ``p`` to ``predicted`` and splits the rest evenly."""
    out = torch.empty(len(top_prob), classes, dtype=torch.float64)
    for i, (p, c) in enumerate(zip(top_prob, predicted)):
        probs = torch.full((classes,), (1 - p) / (classes - 1), dtype=torch.float64)
        probs[c] = p
        out[i] = probs.log()
    return out


def test_ece_equals_the_hand_computed_value():
    # confidences 0.62 and 0.58 fall in different bins of 15 ((8/15, 9/15] and (9/15, 10/15]);
    # three predictions at 0.9, two of them right
    logits = _logits([0.62, 0.58, 0.9, 0.9, 0.9], [0, 0, 1, 1, 0])
    labels = torch.tensor([0, 1, 1, 1, 1])  # right, wrong, right, right, wrong
    expected = 100 * (1 / 5 * abs(1 - 0.62) + 1 / 5 * abs(0 - 0.58) + 3 / 5 * abs(2 / 3 - 0.9))
    assert ece(logits, labels) == pytest.approx(expected, rel=1e-9)
    # one bin: |accuracy - mean confidence| over everything
    assert ece(logits, labels, n_bins=1) == pytest.approx(100 * abs(3 / 5 - (0.62 + 0.58 + 2.7) / 5), rel=1e-9)
    # perfectly calibrated: 4 classes at confidence 0.75, 3 of 4 right
    calibrated = _logits([0.75] * 4, [0, 1, 2, 3], classes=4)
    assert ece(calibrated, torch.tensor([0, 1, 2, 0])) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="n_bins"):
        ece(logits, labels, n_bins=0)
    with pytest.raises(ValueError, match="labels"):
        ece(logits, labels[:3])


def _linear_model() -> nn.Sequential:
    """``f(x) = 2 x`` on R^2 (two classes): Lipschitz constant exactly 2."""
    lin = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(2 * torch.eye(2, dtype=torch.float64))
    return nn.Sequential(lin)


def test_certified_accuracy_of_a_linear_model_with_known_lipschitz_constant():
    model = _linear_model()
    lip = network_lipschitz_bound(model, (2,))
    assert lip == pytest.approx(2.0, rel=1e-12)
    # x = (a, 0), label 0: margin 2a; certified at eps iff 2a > sqrt(2) * 2 * eps, i.e. a > sqrt(2) eps
    a = torch.tensor([0.1, 0.3, 0.5, 1.0, 2.0, -1.0], dtype=torch.float64)  # the last one is misclassified
    x = torch.stack([a, torch.zeros_like(a)], dim=1)
    y = torch.zeros(6, dtype=torch.int64)
    logits = model(x).detach()
    # thresholds sqrt(2) eps: 0.200 (36/255), 0.399 (72/255), 0.599 (108/255), 1.414 (1)
    expected = {"cra_36": 4, "cra_72": 3, "cra_108": 2, "cra_255": 1}
    got = certified_accuracies(logits, y, lip)
    assert got == pytest.approx({k: 100 * v / 6 for k, v in expected.items()})
    assert certified_accuracy(logits, y, lip, 0.0) == pytest.approx(100 * 5 / 6)  # eps 0: clean accuracy

    # for this model the certificate is tight: the exact robust radius of (a, 0) is a / sqrt(2), reached by
    # moving along (w1 - w0) / ||w1 - w0|| = (-1, 1) / sqrt(2); each certified point survives that move at
    # radius eps, each correct uncertified one is flipped by it
    direction = torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    for key, eps in CERTIFIED_EPS.items():
        moved = model(x + eps * direction).argmax(1) == y
        certified = (logits.argmax(1) == y) & (a > math.sqrt(2) * eps)
        assert torch.equal(moved, certified), key
    with pytest.raises(ValueError, match="lipschitz"):
        certified_accuracy(logits, y, float("inf"), 0.1)


def test_empirical_lipschitz_of_a_linear_map_is_its_gain_and_below_the_bound():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    x, y = torch.rand(10, 3, 2, 2), torch.randint(0, 5, (10,))
    ratios = empirical_lipschitz(model, x, y)
    assert ratios.shape == (10,)
    bound = network_lipschitz_bound(model, (3, 2, 2))
    assert bool((ratios > 0).all()) and float(ratios.max()) <= bound * (1 + 1e-5)
    # a scaled orthogonal map has the same gain in every direction
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    iso = nn.Sequential(nn.Flatten(), nn.Linear(12, 12, bias=False))
    with torch.no_grad():
        iso[1].weight.copy_(3 * q)
    assert empirical_lipschitz(iso, x, torch.randint(0, 12, (10,))).tolist() == pytest.approx([3.0] * 10, rel=1e-4)


def test_empirical_lipschitz_in_normalised_units_of_a_1_lipschitz_net_behind_normalize():
    """An orthogonal map behind Normalize(std): 1/std in pixel units (what a 1-Lipschitz LipConvNet shows as up to
    3.9), exactly 1 in the normalised-input units of Senderovich et al. 2022; per-channel stds give 1 too."""
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    for std in ([0.25, 0.25, 0.25], [0.2, 0.25, 0.5]):
        model = nn.Sequential(Normalize([0.4, 0.5, 0.6], std), nn.Flatten(), nn.Linear(12, 12, bias=False))
        with torch.no_grad():
            model[2].weight.copy_(q)
        x, y = torch.rand(10, 3, 2, 2), torch.randint(0, 12, (10,))
        pixel = empirical_lipschitz(model, x, y)
        normalized = empirical_lipschitz(model, x, y, input_std=input_std(model))
        assert normalized.tolist() == pytest.approx([1.0] * 10, rel=1e-4)
        assert bool((pixel >= 1 / max(std) * (1 - 1e-4)).all()) and bool((pixel <= 1 / min(std) * (1 + 1e-4)).all())
        assert model.training  # the model's mode is restored
    assert pixel.max() > 4.0  # the per-channel case does reach above 1/0.25 in pixel units
    with pytest.raises(ValueError, match="input_std must hold one positive value per input channel"):
        empirical_lipschitz(model, x, y, input_std=torch.ones(2))


def test_autoattack_lies_between_certified_and_clean_accuracy():
    """A 4-class linear model on (1, 6, 6) images: AutoAttack (standard suite, L2) cannot beat the
    certificate (a sound lower bound) and cannot raise accuracy above the clean one."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    with torch.no_grad():
        model[1].weight.mul_(3)
    x = torch.rand(12, 1, 6, 6)
    logits = model(x).detach()
    y = logits.argmax(1)
    y[:2] = (y[:2] + 1) % 4  # two misclassified images
    clean = 100 * float((logits.argmax(1) == y).double().mean())
    lip = network_lipschitz_bound(model, (1, 6, 6))
    robust = autoattack_accuracy(model, x, y, 0.5, batch_size=12)  # 36/255 runs inside test_trial
    assert certified_accuracy(logits, y, lip, 0.5) <= robust < clean  # eps 0.5 breaks some image of this model
    with pytest.raises(ValueError, match="norm"):
        autoattack_accuracy(model, x, y, 0.5, norm="L3")
    with pytest.raises(ValueError, match="at least 5x5"):  # Square's L2 init tiles 5x5 blocks
        autoattack_accuracy(model, x[:, :, :4, :4], y, 0.5)


def test_corruption_accuracy_on_cifar10c_files(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=5 * 6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    expected = []
    for name in ("fog", "snow"):
        images = rng.integers(0, 256, size=(5 * 6, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", images)
        with torch.no_grad():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
            pred = model(x).argmax(1).numpy()
        expected += [100 * np.mean(pred[s * 6 : (s + 1) * 6] == labels[s * 6 : (s + 1) * 6]) for s in range(5)]
    np.save(folder / "labels.npy", labels)
    got = corruption_accuracy(model, tmp_path, corruptions=("fog", "snow"), batch_size=4)
    assert got == pytest.approx(float(np.mean(expected)))
    assert corruption_accuracy(model, tmp_path, n_per_severity=6, corruptions=("fog", "snow")) == pytest.approx(got)
    with pytest.warns(UserWarning, match="gaussian_noise.npy"):
        assert corruption_accuracy(model, tmp_path) is None  # the 15 standard files are not all there
