"""AOL-STD and AOL-Conv (Prach & Lampert 2022): the authors' layer plan, output shapes, and the certified
network bound checked as a bound (every AOL layer's dense operator norm <= 1, the network's bound above the
largest Jacobian norm found); the input conventions of each family (svconv.models.preprocessing)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from svconv.layers import AOLConv2d, InvertibleDownsampling
from svconv.metrics.lipschitz_bound import network_lipschitz_bound
from svconv.models import Normalize, arch_preprocessing, build_model, input_shapes
from svconv.models.aol_nets import aol_conv, aol_std, repeated_orthogonal_
from svconv.models.preprocessing import normalization
from svconv.spectrum import dense_operator

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _plan(net: nn.Module) -> list[tuple[int, int, int] | str]:
    """(c_in, c_out, k) of each AOL conv, "pool" for each concatenation pooling."""
    return [
        (m.in_channels, m.out_channels, m.kernel_size[0]) if isinstance(m, AOLConv2d) else "pool"
        for m in net
        if isinstance(m, (AOLConv2d, InvertibleDownsampling))
    ]


def test_aol_std_on_cifar_follows_the_authors_layer_plan():
    with torch.device("meta"):  # the structure only: no memory, no initialisation
        net = build_model("aol-std", 10, (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD).net
    plan = [(3, 32, 1)]
    for w in (32, 64, 128, 256, 512):  # channels x2 whenever the resolution halves
        plan += [(w, w, 3)] * 4 + ["pool", (4 * w, 2 * w, 1)]
    plan += [(1024, 1024, 1)]
    assert _plan(net) == plan
    shapes = input_shapes(net, (3, 32, 32))
    assert shapes[str(len(net) - 2)] == (1024, 1, 1)  # FirstChannels(10) on the 1x1 map of 1024 channels


def test_aol_conv_on_cifar_follows_the_authors_layer_plan():
    with torch.device("meta"):
        net = build_model("aol-conv", 100, (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD).net
    plan: list = []
    for c_in, w, k in ((3, 16, 3), (16, 64, 3), (64, 256, 3), (256, 1024, 1)):  # channels x4 per halving
        plan += ["pool", (4 * c_in, w, 1)] + [(w, w, k)] * 4
    plan += [(1024, 1024, 1), "pool", (1024, 1024, 1)] + [(1024, 1024, 1)] * 4 + [(1024, 1024, 1)]
    assert _plan(net) == plan
    shapes = input_shapes(net, (3, 32, 32))
    assert shapes[str(len(net) - 2)] == (1024, 1, 1)


@pytest.mark.parametrize("builder,kwargs", [(aol_std, dict(base_width=4, layers_per_block=2)), (aol_conv, dict(base_width=4, layers_per_block=2))])
@pytest.mark.parametrize("side,classes", [(8, 10), (16, 3)])
def test_output_shapes_on_small_inputs(builder, kwargs, side, classes):
    net = builder(2, classes, (side, side), **kwargs)
    assert net(torch.rand(3, 2, side, side)).shape == (3, classes)


def test_bad_sizes_are_refused_with_the_rule():
    with pytest.raises(ValueError, match="square inputs of side 2\\^n"):
        aol_std(1, 10, (28, 28))
    with pytest.raises(ValueError, match="square inputs of side 2\\^n"):
        aol_conv(3, 10, (32, 16))
    with pytest.raises(ValueError, match="base_width must be even"):
        aol_std(3, 10, (8, 8), base_width=3)
    with pytest.raises(ValueError, match="base_width must be a multiple of 4"):
        aol_conv(3, 10, (8, 8), base_width=6)
    with pytest.raises(ValueError, match=">= num_classes"):
        aol_conv(3, 100, (8, 8), base_width=4)  # 16 channels at the top


def _randomised(net: nn.Module, seed: int) -> nn.Module:
    """Random learnt weights (the identity initialisation would make AOL's rescaling trivial), float64."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net.double().eval()


def _max_jacobian_norm(f, x0: torch.Tensor, points: int, seed: int) -> float:
    """Largest spectral norm of the Jacobian of ``f`` at random points near ``x0``: a lower bound of Lip(f)."""
    g = torch.Generator().manual_seed(seed)
    best = 0.0
    for _ in range(points):
        x = x0 + torch.rand(x0.shape, generator=g, dtype=x0.dtype)
        jac = torch.autograd.functional.jacobian(f, x).reshape(-1, x.numel())
        best = max(best, float(torch.linalg.matrix_norm(jac, 2)))
    return best


@pytest.mark.parametrize("builder", [aol_std, aol_conv])
def test_every_aol_layer_is_one_lipschitz_and_the_network_bound_is_a_bound(builder):
    shape = (2, 8, 8)
    net = _randomised(builder(shape[0], 4, shape[1:], base_width=4, layers_per_block=2), seed=1)
    shapes = input_shapes(net, shape)
    convs = [(name, m) for name, m in net.named_children() if isinstance(m, AOLConv2d)]
    assert len(convs) >= 5
    for name, m in convs:
        dense = dense_operator(m, shapes[name], dtype=torch.float64)
        assert float(torch.linalg.matrix_norm(dense, 2)) <= 1 + 1e-9, name
    assert network_lipschitz_bound(net, shape) == pytest.approx(1.0)
    # as built (identity and orthogonal kernels) the net is close to an isometry: the bound is nearly attained
    torch.manual_seed(0)
    net = builder(shape[0], 4, shape[1:], base_width=4, layers_per_block=2).double().eval()
    bound = network_lipschitz_bound(net, shape)
    empirical = _max_jacobian_norm(lambda x: net(x.unsqueeze(0))[0], torch.zeros(shape, dtype=torch.float64), 6, seed=2)
    assert 0.5 < empirical <= bound * (1 + 1e-9) and bound == pytest.approx(1.0)


def test_repeated_orthogonal_initialisation():
    torch.manual_seed(0)
    wide = repeated_orthogonal_(torch.empty(8, 3, 1, 1)).view(8, 3)  # c_in <= c_out: orthonormal columns
    assert torch.allclose(wide.T @ wide, torch.eye(3), atol=1e-6)
    narrow = repeated_orthogonal_(torch.empty(3, 8, 1, 1)).view(3, 8)  # c_in > c_out: drawn basis columns
    gram = narrow.T @ narrow
    for i in range(8):
        for j in range(8):  # two inputs share one basis direction or are orthogonal
            assert abs(float(gram[i, j])) < 1e-6 or float(gram[i, j]) == pytest.approx(float(gram[i, i]), rel=1e-5)
    assert float(torch.linalg.matrix_norm(narrow, 2)) == pytest.approx(1.0, rel=1e-5)


def test_each_family_follows_its_papers_input_convention():
    data = ((3, 32, 32), CIFAR10_MEAN, CIFAR10_STD)
    # AOL: images in [0, 1] unchanged, so the certificate is the AOL layers' 1 (it was 1/min std = 4.107)
    assert arch_preprocessing("aol-small") == "none" and arch_preprocessing("aol-conv") == "none"
    model = build_model("aol-fc", 10, (1, 8, 8), (0.13,), (0.31,))
    assert torch.equal(model.normalize.mean, torch.zeros(1)) and torch.equal(model.normalize.std, torch.ones(1))
    assert network_lipschitz_bound(model, (1, 8, 8)) == pytest.approx(1.0)
    # SOC's code: centred, one std for every channel (0.2507 on CIFAR-10), certificate 1/std = 3.989
    assert arch_preprocessing("lipconvnet-5") == "center-scale"
    mean, std = normalization("center-scale", *data[1:])
    assert mean == CIFAR10_MEAN and std == pytest.approx((0.2507,) * 3, abs=5e-5)
    assert network_lipschitz_bound(Normalize(mean, std), data[0]) == pytest.approx(1 / 0.2507, rel=2e-4)
    # everything else: per-channel statistics, 1/min(std) = 4.107
    assert arch_preprocessing("wrn-16-10") == "standardize"
    assert network_lipschitz_bound(Normalize(*normalization("standardize", *data[1:])), data[0]) == pytest.approx(1 / 0.2435)
    with pytest.raises(ValueError, match="preprocessing must be one of standardize, center-scale, none"):
        normalization("zscore", *data[1:])
    assert math.isclose(sum(CIFAR10_STD) / 3, 0.2507, abs_tol=1e-6)
