"""Division (Gouk et al. 2021) with one target per layer kind: conv/TT ``clip_to``, linear ``clip_to_linear``,
batch norm ``clip_to_bn``; checked against each layer's dense operator, through the method, the per-layer
function ``divide_bn_``, the trial options and a trial's ``layers`` rows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svconv.config import TrialConfig
from svconv.control import divide_bn_
from svconv.layers import bn_lipschitz
from svconv.methods import get_method
from svconv.results import read_table
from svconv.tt import from_conv
from test_control import dense_norm  # the layer's norm from its dense operator (float64)

SHAPE = (4, 6, 6)
TARGETS = {"conv": 0.7, "tt": 0.7, "linear": 0.3, "bn": 2.0}


def blown_up(rank: int | None) -> torch.nn.Module:
    """conv (TT at ``rank``), batch norm, linear head in float64, every layer far above its target."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, padding_mode="circular")
    if rank is not None:
        conv, _ = from_conv(conv, rank)
    model = nn.Sequential(conv, nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 5)).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(3.0)
        model[1].weight.fill_(4.0)
        model[1].running_var.fill_(0.25)  # Lip = 4 / sqrt(0.25 + eps), about 8
    return model


@pytest.mark.parametrize("rank", [None, 2])
def test_each_kind_ends_at_its_own_target(rank):
    """After one step every layer's true norm, from its dense operator, is its own kind's target: batch norm
    exactly (its constant is exact), conv/TT/linear up to the power estimate (100 warm steps: within 1e-4
    here, and never below the target, the estimate being a lower bound); the results record that target."""
    model = blown_up(rank)
    method = get_method("division", clip_to=TARGETS["conv"], clip_to_linear=TARGETS["linear"], clip_to_bn=TARGETS["bn"],
                        power_iters=100)  # fmt: skip
    method.attach(model, SHAPE)
    assert [layer.kind for layer in method.layers] == ["tt" if rank else "conv", "bn", "linear"]
    assert all(dense_norm(layer.module, layer.input_shape) > 1.5 * TARGETS[layer.kind] for layer in method.layers)
    method.step(model, 0)
    for layer in method.layers:
        c = TARGETS[layer.kind]
        true = dense_norm(layer.module, layer.input_shape)
        tol = 1e-12 if layer.kind == "bn" else 1e-4
        assert c * (1 - 1e-12) <= true <= c * (1 + tol), (layer.name, layer.kind, true, c)
        assert method.results[layer.name].target == c
        if layer.kind == "bn":
            assert method.results[layer.name].sigma_after == pytest.approx(bn_lipschitz(layer.module), rel=1e-12)


def test_unset_kind_targets_are_clip_to():
    model = blown_up(None)
    method = get_method("division", clip_to=0.5, power_iters=100)
    method.attach(model, SHAPE)
    method.step(model, 0)
    assert {method.target_for(k) for k in ("conv", "tt", "linear", "bn")} == {0.5}
    for layer in method.layers:
        assert dense_norm(layer.module, layer.input_shape) == pytest.approx(0.5, rel=1e-4), layer.name


def test_divide_bn_scales_every_gamma_alike_and_leaves_a_layer_below_alone():
    bn = torch.nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -6.0, 3.0], dtype=torch.float64))
        bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64))  # |scale| about 1, 3, 6
    res = divide_bn_(bn, 2.0)
    assert res.passes == 1 and res.target == 2.0 and res.sigma_after == pytest.approx(2.0, rel=1e-12)
    assert dense_norm(bn, (3, 2, 2)) == pytest.approx(2.0, rel=1e-9)
    assert torch.allclose(bn.weight, torch.tensor([1.0, -6.0, 3.0], dtype=torch.float64) / (3 / (0.25 + bn.eps) ** 0.5 / 2))
    kept = bn.weight.detach().clone()
    res = divide_bn_(bn, 5.0)
    assert res.passes == 0 and res.rel_change == 0.0 and torch.equal(bn.weight, kept)
    with pytest.raises(ValueError, match="max_lip must be a positive number"):
        divide_bn_(bn, 0.0)
    with pytest.raises(ValueError, match="affine"):
        divide_bn_(torch.nn.BatchNorm2d(3, affine=False), 1.0)


def test_trial_options_are_validated_by_name():
    cfg = TrialConfig(method="division", clip_to=7.0, clip_to_linear=7.0, clip_to_bn=10.0)
    assert (cfg.clip_to_linear, cfg.clip_to_bn) == (7.0, 10.0)
    assert TrialConfig(method="division").clip_to_bn is None
    with pytest.raises(ValueError, match="clip_to_bn: not used by method 'clip'.* takes clip_to, clip_every, clip_iters, clip_tol"):
        TrialConfig(method="clip", clip_to_bn=2.0)
    with pytest.raises(ValueError, match="clip_to_linear: not used by method 'fastclip'"):
        get_method("fastclip", clip_to_linear=2.0)
    with pytest.raises(ValueError, match="clip_to_linear must be None .* or a positive number"):
        TrialConfig(method="division", clip_to_linear=-1.0)
    with pytest.raises(ValueError, match="clip_to_bn must be a finite number or null"):
        TrialConfig(method="division", clip_to_bn="8")


def test_a_division_trial_leaves_each_kind_at_its_target(tmp_path):
    """The options reach the method: a trial that divides after every step (20 warm power steps) ends with
    its linear head and its batch norm at their own targets in the ``layers`` rows, below clip_to's."""
    from svconv.trial import run_trial

    cfg = TrialConfig(dataset="synthetic", arch="small-cnn", n_train=32, n_test=32, batch_size=32, epochs=1, emp_lip_n=0,
                      device="cpu", method="division", clip_to=3.0, clip_to_linear=0.25, clip_to_bn=0.5, power_iters=20)  # fmt: skip
    row = run_trial(cfg, tmp_path, progress=False)
    assert row["status"] == "ok"
    layers = read_table(tmp_path, "layers")
    norms = layers.groupby("kind")["spectral_norm"].max()
    assert norms["linear"] == pytest.approx(0.25, rel=1e-3)  # exact matrix norm of the head
    assert norms["bn"] == pytest.approx(0.5, rel=1e-5)  # exact BN constant
    assert norms["conv"] > 0.5  # the convs' target is clip_to = 3, not the others'


@pytest.mark.parametrize(
    "spec, targets",
    [("wrn16-10-cifar10", (7.0, 7.0, 10.0)), ("wrn16-10-cifar100", (10.0, 3.9, 6.1)), ("vgg19", (1.5, 1.5, 8.0))],
)
def test_shipped_specs_divide_with_the_papers_code_targets(spec, targets):
    """Division trials of the WRN-16-10 and VGG-19 specs: conv, linear and BN targets of the paper's code
    (experiments.sh of Senderovich et al. 2022's repository) and a step after every optimiser step; clipping
    every 100 steps."""
    from pathlib import Path

    from sweeps.spec import load_spec

    s = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / f"{spec}.yaml")
    division = [t.config for t in s.trials if t.config.method == "division"]
    assert division and {(c.clip_to, c.clip_to_linear, c.clip_to_bn, c.clip_every) for c in division} == {(*targets, 1)}
    assert {t.config.clip_every for t in s.trials if t.config.method == "clip"} == {100}
