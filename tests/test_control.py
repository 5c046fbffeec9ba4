"""``svconv.control``: per-layer control in place, judged by the dense operator of the edited layer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from svconv.control import ControlResult, clip_, divide_, exact_norm, fastclip_, gram_rescale_, controlled_kind
from svconv.spectrum import dense_operator


def dense_norm(module: nn.Module, input_shape) -> float:
    was = module.training
    module.eval()
    try:
        return float(torch.linalg.matrix_norm(dense_operator(module, input_shape, dtype=torch.float64), ord=2))
    finally:
        module.train(was)


def conv(c_in=3, c_out=4, stride=1, padding_mode="circular", seed=0, scale=3.0) -> nn.Conv2d:
    torch.manual_seed(seed)
    m = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding_mode, bias=False).double()
    with torch.no_grad():
        m.weight.mul_(scale)
    return m


def rel_change(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((after - before).norm() / before.norm())


@pytest.mark.parametrize("stride", [1, 2])
def test_clip_lands_within_tolerance_of_the_target(stride):
    m = conv(stride=stride)
    before = m.weight.detach().clone()
    assert dense_norm(m, (3, 8, 8)) > 1.5
    res = clip_(m, 1.0, 8, tol=0.01)
    assert isinstance(res, ControlResult) and res.target == 1.0 and res.passes >= 1 and res.level is not None
    # circular padding: the periodic operator is the layer itself, so sigma_after is its true norm
    assert res.sigma_after == pytest.approx(dense_norm(m, (3, 8, 8)), rel=1e-8)
    assert abs(res.sigma_after - 1.0) <= 0.01 and res.ratio == pytest.approx(res.sigma_after)
    assert res.rel_change == pytest.approx(rel_change(before, m.weight.detach()), rel=1e-10)
    # a layer already below the target is left as it is
    again = clip_(m, 2.0, 8)
    assert again.passes == 0 and again.rel_change == 0.0 and again.sigma_after <= 2.0


def test_clip_plain_passes_with_zero_tolerance_and_zero_padding_bound():
    m = conv(padding_mode="zeros")
    res = clip_(m, 1.0, (8, 8), tol=0, max_passes=3, check=True)
    assert res.passes == 3 and res.sigma_after is not None
    # zeros padding: clipping acts on the periodic model of the padded grid, an upper bound of the layer
    assert dense_norm(m, (3, 8, 8)) <= res.sigma_after * (1 + 1e-9)
    assert clip_(m, 1.0, 8, tol=0, max_passes=1).sigma_after is None  # not measured unless asked


def test_clip_tt_and_linear():
    from svconv.tt import from_conv

    tt, _ = from_conv(conv(4, 6), 2)
    tt = tt.double()
    full_before = tt.full_weight().detach().clone()
    res = clip_(tt, 1.0, 8, tol=0.01)
    assert abs(dense_norm(tt, (4, 8, 8)) - 1.0) <= 0.01 + 1e-9
    assert res.rel_change == pytest.approx(rel_change(full_before, tt.full_weight().detach()), rel=1e-8)
    lin = nn.Linear(5, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.mul_(10)
    out = clip_(lin, 1.0)
    assert out.sigma_after == 1.0 and float(torch.linalg.matrix_norm(lin.weight.detach(), ord=2)) == pytest.approx(1.0)


def test_divide_reaches_the_target_with_converged_power_and_keeps_its_vector():
    m = conv(padding_mode="zeros", stride=2)
    state: dict = {}
    res = divide_(m, 1.0, 8, n_iter=60, state=state, generator=torch.Generator().manual_seed(0), check=True)
    assert res.passes == 60 and state["v"].shape == (3, 8, 8)
    assert dense_norm(m, (3, 8, 8)) == pytest.approx(1.0, rel=2e-3)
    assert dense_norm(m, (3, 8, 8)) <= res.sigma_after * (1 + 1e-9)  # exact periodic-model norm: an upper bound
    before = m.weight.detach().clone()
    assert divide_(m, 2.0, 8, n_iter=5, state=state).rel_change == 0.0 and torch.equal(m.weight, before)


def test_fastclip_steps_move_a_reflect_padded_conv_and_a_conv_bn_pair_to_the_target():
    m = conv(padding_mode="reflect", scale=4.0)
    res = fastclip_(m, 1.0, 7, n_iter=100, power_iters=10, generator=torch.Generator().manual_seed(0))
    assert 1 <= res.passes <= 100 and res.sigma_after is None
    assert dense_norm(m, (3, 7, 7)) == pytest.approx(1.0, rel=0.05)
    from svconv.layers import ConvBN

    m2, bn = conv(seed=1), nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))
    fastclip_(m2, 1.0, 8, n_iter=100, power_iters=10, bn=bn)
    assert dense_norm(ConvBN(m2, bn), (3, 8, 8)) == pytest.approx(1.0, rel=0.05)
    assert bn.weight.tolist() == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("padding_mode", ["circular", "zeros", "replicate"])
def test_gram_rescale_is_an_honest_bound(padding_mode):
    m = conv(padding_mode=padding_mode, stride=2)
    res = gram_rescale_(m, 1.0, 8, check=True)
    assert res.passes == 1 and dense_norm(m, (3, 8, 8)) <= 1.0 + 1e-9
    if padding_mode == "circular":
        assert dense_norm(m, (3, 8, 8)) == pytest.approx(1.0, rel=1e-3) == res.sigma_after


def test_bad_layers_and_targets_are_refused_by_name():
    with pytest.raises(ValueError, match="module must be an nn.Conv2d"):
        controlled_kind(nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match="max_sv"):
        clip_(conv(), 0.0, 8)
    with pytest.raises(ValueError, match="input_size"):
        divide_(conv(), 1.0, None)
    grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    with pytest.raises(ValueError, match="'division' or 'fastclip'"):
        clip_(grouped, 1.0, 8)
    assert exact_norm(grouped, 8) is None  # no exact routine for groups > 1
    fastclip_(copy.deepcopy(grouped), 1.0, 8)  # the alternative named accepts it


def test_methods_keep_each_layers_result_and_carry_the_clip_level():
    from svconv.methods import get_method

    model = nn.Sequential(conv(), nn.ReLU(), conv(4, 4, seed=1))
    method = get_method("clip", clip_to=1.0, clip_tol=0.02)
    method.attach(model, (3, 8, 8))
    method.step(model, 0)
    assert set(method.results) == {"0", "2"}
    for layer in method.layers:
        res = method.results[layer.name]
        assert abs(res.sigma_after - 1.0) <= 0.02 and layer.state["level"] == res.level
        assert dense_norm(layer.module, layer.input_shape) == pytest.approx(res.sigma_after, rel=1e-8)


@pytest.mark.parametrize("max_sv", [0.0, -1.0])
def test_every_control_function_refuses_a_non_positive_target(max_sv):
    from svconv.methods.rescale import spectral_rescale_

    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")
    before = conv.weight.detach().clone()
    for control in (clip_, divide_, fastclip_, gram_rescale_, spectral_rescale_):
        with pytest.raises(ValueError, match="max_sv must be a positive number"):
            control(conv, max_sv, (4, 4))
    assert torch.equal(conv.weight, before)  # refused before anything was edited
