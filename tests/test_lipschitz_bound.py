"""Certified Lipschitz bounds and per-layer spectral norms against the explicit operator matrix."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from svconv.metrics import layer_lipschitz_bound, layer_spectral_norms, leaf_lipschitz_bounds, network_lipschitz_bound
from svconv.kinds import LayerKind
from svconv.spectrum import conv_geometry, conv_layer_bound
from svconv.spectrum.conv_geometry import geometry
from svconv.models.blocks import Normalize, Residual
from svconv.models.shapes import input_shapes
from svconv.results.schema import LAYERS
from svconv.results.store import read_table, write_rows
from svconv.spectrum import dense_operator


def dense_norm(module: nn.Module, shape) -> float:
    return float(torch.linalg.matrix_norm(dense_operator(module, shape, dtype=torch.float64), 2))


def _random_bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    return bn.eval()


LINEAR_LAYERS = [
    ("zeros", lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 6, 6)),
    ("zeros-stride2", lambda: nn.Conv2d(3, 4, 3, padding=1, stride=2), (3, 6, 6)),
    ("zeros-stride2-odd", lambda: nn.Conv2d(3, 4, 3, padding=1, stride=2), (3, 7, 7)),
    ("valid", lambda: nn.Conv2d(2, 3, 3), (2, 6, 5)),
    ("same-even", lambda: nn.Conv2d(3, 2, 4, padding="same"), (3, 6, 6)),
    ("reflect", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 6, 6)),
    ("replicate", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate"), (3, 5, 5)),
    ("groups-dilation", lambda: nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), (4, 6, 6)),
    ("1x1-stride2", lambda: nn.Conv2d(3, 4, 1, stride=2), (3, 5, 5)),
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, padding=1), (3, 7)),
    ("conv3d-stride", lambda: nn.Conv3d(2, 3, 3, padding=1, stride=(1, 2, 2)), (2, 4, 4, 4)),
    ("linear", lambda: nn.Linear(10, 5), (10,)),
    ("bn", lambda: _random_bn(3), (3, 4, 4)),
    ("normalize", lambda: Normalize([0.5, 0.4], [0.2, 0.3]), (2, 4, 4)),
    ("avgpool", lambda: nn.AvgPool2d(2), (2, 6, 6)),
    ("avgpool-overlap-pad", lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 7, 7)),
    ("avgpool-nopadcount", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 7, 7)),
    ("avgpool-divisor", lambda: nn.AvgPool2d(2, divisor_override=3), (1, 4, 4)),
    ("adaptive-avg-1", lambda: nn.AdaptiveAvgPool2d(1), (2, 5, 5)),
    ("adaptive-avg-2x3", lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 5, 7)),
    ("flatten", lambda: nn.Flatten(), (2, 3, 3)),
    ("pixel-unshuffle", lambda: nn.PixelUnshuffle(2), (1, 4, 4)),
]

# Operators whose bound is their exact norm.
EXACT = {"linear", "bn", "normalize", "avgpool", "avgpool-overlap-pad", "avgpool-nopadcount", "avgpool-divisor",
         "adaptive-avg-1", "adaptive-avg-2x3", "flatten", "pixel-unshuffle", "1x1-stride2"}  # fmt: skip


@pytest.mark.parametrize("name,make,shape", LINEAR_LAYERS, ids=[c[0] for c in LINEAR_LAYERS])
def test_layer_bound_is_an_upper_bound_of_the_dense_norm(name, make, shape):
    torch.manual_seed(0)
    module = make().double()
    bound = layer_lipschitz_bound(module, shape)
    truth = dense_norm(module, shape)
    assert bound >= truth * (1 - 1e-10)
    if name in EXACT:
        assert bound == pytest.approx(truth, rel=1e-9)
    elif not name.startswith(("reflect", "replicate")):
        assert bound <= 1.6 * truth  # the circular embedding is not a loose bound for zero padding


@pytest.mark.parametrize("stride,size", [(1, 6), (2, 6), (2, 8)])
def test_circular_conv_bound_is_exact_and_gram_bounds_it(stride, size):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular", stride=stride).double()
    truth = dense_norm(conv, (3, size, size))
    bound, exact = conv_layer_bound(conv, (3, size, size))
    assert exact and bound == pytest.approx(truth, rel=1e-9)
    gram, exact_g = conv_layer_bound(conv, (3, size, size), method="gram")
    assert not exact_g and truth * (1 - 1e-10) <= gram <= truth * 1.01


def test_max_pool_bound_holds_on_random_pairs():
    torch.manual_seed(2)
    for pool, expected in [(nn.MaxPool2d(2), 1.0), (nn.MaxPool2d(3, stride=1, padding=1), 3.0)]:
        bound = layer_lipschitz_bound(pool, (2, 6, 6))
        assert bound == pytest.approx(expected)
        x, y = torch.randn(2, 200, 2, 6, 6, dtype=torch.float64)
        ratio = (pool(x) - pool(y)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
        assert ratio.max() <= bound


def small_linear_net() -> nn.Sequential:
    """Normalize -> conv (zeros, stride 2) -> BN -> Residual(conv) -> Residual(conv, 1x1 shortcut) -> Flatten -> Linear."""
    net = nn.Sequential(
        Normalize([0.4, 0.5], [0.25, 0.3]),
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        _random_bn(4),
        Residual(nn.Conv2d(4, 4, 3, padding=1)),
        Residual(nn.Conv2d(4, 3, 3, padding=1, padding_mode="circular"), nn.Conv2d(4, 3, 1)),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    )
    return net.double().eval()


def test_network_bound_bounds_the_dense_norm_of_a_linear_network_and_each_layer():
    torch.manual_seed(3)
    net = small_linear_net()
    shape = (2, 8, 8)
    truth = dense_norm(net, shape)
    bound = network_lipschitz_bound(net, shape)
    assert bound >= truth * (1 - 1e-10)
    leaves = leaf_lipschitz_bounds(net, shape)
    shapes = input_shapes(net, shape)
    modules = dict(net.named_modules())
    assert set(leaves) == {"0", "1", "2", "3.body", "4.body", "4.shortcut", "5", "6"}
    for name, b in leaves.items():
        assert b >= dense_norm(modules[name], shapes[name]) * (1 - 1e-10), name
    # composition rules: product along the Sequential, body + shortcut (identity: 1) at each Residual
    composed = (
        leaves["0"] * leaves["1"] * leaves["2"] * (leaves["3.body"] + 1)
        * (leaves["4.body"] + leaves["4.shortcut"]) * leaves["5"] * leaves["6"]
    )  # fmt: skip
    assert bound == pytest.approx(composed, rel=1e-12)


class Scaled(nn.Module):
    """A layer that bounds itself (as the svconv TT / SOC / AOL layers do); has children on purpose."""

    layer_kind = LayerKind.AOL

    def __init__(self, c: int, scale: float):
        super().__init__()
        self.inner = nn.Conv2d(c, c, 1, bias=False)
        with torch.no_grad():
            self.inner.weight.copy_(scale * torch.eye(c).view(c, c, 1, 1))
        self.scale = scale

    def forward(self, x):
        return self.inner(x)

    def lipschitz_bound(self, input_shape) -> float:
        return abs(self.scale)


def test_self_bounding_layers_are_leaves_and_nonlinear_bound_holds_empirically():
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), Scaled(3, 0.5), nn.MaxPool2d(2), nn.LeakyReLU(0.1),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 3 * 3, 4),
    )  # fmt: skip
    leaves = leaf_lipschitz_bounds(net, (1, 6, 6))
    assert leaves["2"] == 0.5 and "2.inner" not in leaves
    bound = network_lipschitz_bound(net, (1, 6, 6))
    net.eval()
    x, y = torch.randn(2, 500, 1, 6, 6)
    with torch.no_grad():
        ratio = (net(x) - net(y)).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert ratio.max() <= bound


def test_unknown_modules_are_refused_by_name():
    with pytest.raises(ValueError, match="LayerNorm"):
        layer_lipschitz_bound(nn.LayerNorm(4), (4,))
    with pytest.raises(ValueError, match="track_running_stats"):
        layer_lipschitz_bound(nn.BatchNorm2d(3, track_running_stats=False), (3, 4, 4))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 3)

        def forward(self, x):
            return self.body(x)

    with pytest.raises(ValueError, match="Wrapper"):
        network_lipschitz_bound(nn.Sequential(Wrapper()), (3,))


def test_layer_spectral_norms_rows_fit_the_schema(tmp_path):
    torch.manual_seed(5)
    net = small_linear_net()
    shape = (2, 8, 8)
    net.train()
    rows = layer_spectral_norms(net, shape, power_iters=200)
    assert net.training  # mode restored
    net.eval()
    modules = dict(net.named_modules())
    shapes = input_shapes(net, shape)
    assert [r["layer"] for r in rows] == ["1", "2", "3.body", "4.body", "4.shortcut", "6"]
    schema_cols = set(LAYERS.names) - {"trial_id", "sweep", "schema_version"}
    by_name = {r["layer"]: r for r in rows}
    for r in rows:
        assert set(r) == schema_cols
        truth = dense_norm(modules[r["layer"]], shapes[r["layer"]])
        assert r["lipschitz_bound"] >= truth * (1 - 1e-10)
        if r["norm_method"] == "exact":
            assert r["spectral_norm"] == pytest.approx(truth, rel=1e-6)
        else:
            assert r["norm_method"] == "power"
            assert r["spectral_norm"] == pytest.approx(truth, rel=1e-3)
    assert by_name["1"]["norm_method"] == "power" and by_name["4.body"]["norm_method"] == "exact"
    assert by_name["1"] | {"spectral_norm": 0, "lipschitz_bound": 0} == {
        "layer": "1", "kind": "conv", "spectral_norm": 0, "norm_method": "power", "c_in": 2, "c_out": 4,
        "kernel": "3x3", "stride": 2, "input_size": "8x8", "rank": None, "lipschitz_bound": 0,
    }  # fmt: skip
    assert by_name["2"]["kind"] == "bn" and by_name["6"]["kind"] == "linear" and by_name["6"]["c_in"] == 48
    write_rows(tmp_path, "layers", "t", [dict(r, trial_id="t") for r in rows])
    back = read_table(tmp_path, "layers")
    assert list(back["layer"]) == [r["layer"] for r in rows]
    assert math.isclose(back["spectral_norm"].iloc[0], rows[0]["spectral_norm"])


def test_small_map_circular_conv_gets_a_bound_not_an_error():
    """A 3x3 circular conv on a 2x2 map: the kernel is larger than the torus, so it is no periodic operator on
    the input grid; the certificate still holds (it used to raise a ValueError here)."""
    torch.manual_seed(11)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular").double()
    net = nn.Sequential(conv)
    bound = network_lipschitz_bound(net, (2, 2, 2))
    truth = dense_norm(conv, (2, 2, 2))
    assert truth * (1 - 1e-12) <= bound <= 4 * truth  # the copy map of the padding has norm 2 here
    (row,) = layer_spectral_norms(net, (2, 2, 2), power_iters=300)
    assert row["norm_method"] == "power" and row["spectral_norm"] == pytest.approx(truth, rel=1e-4)


@pytest.mark.parametrize(
    "kernel,padding,stride,size,exact",
    [
        (3, 1, 1, 6, True),  # l + r == k - 1: the periodic operator itself
        (5, 1, 1, 7, False),  # l + r < k - 1: some of its outputs, a bound only
        (5, (2, 0), 1, 6, False),
        (3, 1, 2, 6, True),
        (3, 1, 2, 7, False),  # stride does not divide the input: padded grid, a bound
        (3, 0, 1, 5, False),  # circular mode without padding: "valid", a restriction
    ],
)
def test_circular_padding_rule_exact_only_at_k_minus_1(kernel, padding, stride, size, exact):
    torch.manual_seed(12)
    conv = nn.Conv2d(2, 3, kernel, padding=padding, padding_mode="circular", stride=stride).double()
    bound, is_exact = conv_layer_bound(conv, (2, size, size))
    truth = dense_norm(conv, (2, size, size))
    assert is_exact == exact == conv_geometry(conv, (size, size)).exact
    assert bound >= truth * (1 - 1e-12)
    if exact:
        assert bound == pytest.approx(truth, rel=1e-9)
    (row,) = layer_spectral_norms(nn.Sequential(conv), (2, size, size), power_iters=500)
    assert row["norm_method"] == ("exact" if exact else "power")
    assert row["spectral_norm"] == pytest.approx(truth, rel=1e-4)


def test_geometry_flags_and_grid():
    g = geometry((3, 3), (8, 8), 2, 1, 1, "circular")
    assert g.periodic and g.exact and g.grid == (8, 8) and g.padding_norm == 1.0
    g = geometry((5,), (8,), 1, 1, 1, "circular")  # less padding than k - 1: still on the input grid
    assert g.periodic and not g.exact and g.grid == (8,)
    g = geometry((3,), (2,), 1, 1, 1, "circular")  # kernel larger than the input: padded grid and copy norm
    assert not g.periodic and g.grid == (4,) and g.padding_norm == pytest.approx(math.sqrt(2))
    g = geometry((3,), (7,), 2, 1, 1, "zeros")
    assert not g.periodic and g.grid == (10,) and g.padding_norm == 1.0
    g = geometry((3,), (6,), 1, "same", 2, "reflect")  # dilated extent 5, pads (2, 2)
    assert g.kernel == (5,) and g.pads == ((2, 2),) and not g.periodic
    with pytest.raises(ValueError, match="padding_mode"):
        geometry((3,), (6,), 1, 1, 1, "mirror")
    with pytest.raises(ValueError, match="smaller than the"):
        geometry((5,), (2,), 1, 0, 1, "zeros")


def test_parameter_free_layers_get_no_rows_and_kinds_come_from_the_classes():
    from svconv.kinds import LayerKind, layer_kind
    from svconv.layers import SOC, AOLConv2d, InvertibleDownsampling, MaxMin
    from svconv.layers.aol import aol
    from svconv.models.channels import FirstChannels, PadChannels, PadTo
    from svconv.tt import TTConv2d

    torch.manual_seed(13)
    net = nn.Sequential(
        PadTo(8), nn.Conv2d(1, 4, 3, padding=1), MaxMin(), InvertibleDownsampling(2), FirstChannels(8),
        PadChannels(10), AOLConv2d(10, 6, 3), SOC(6, 3, eval_terms=8), TTConv2d(6, 6, 3, rank=2, padding=1),
        nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(6 * 16, 5), aol(nn.Linear(5, 3)),
    )  # fmt: skip
    rows = layer_spectral_norms(net, (1, 7, 7), power_iters=20)
    kinds = {r["layer"]: r["kind"] for r in rows}
    assert kinds == {"1": "conv", "6": "aol", "7": "soc", "8": "tt", "9": "bn", "11": "linear", "12": "aol"}
    assert rows[-1]["lipschitz_bound"] <= 1 + 1e-6 and rows[-1]["c_in"] == 5
    assert layer_kind(net[2]) is None and layer_kind(net[1]) is LayerKind.CONV and LayerKind.TT == "tt"
