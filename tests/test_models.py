"""Architectures: names, construction at MNIST and CIFAR input sizes, TT compression, structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svconv.models import ARCH_PATTERNS, MODELS, Normalize, Residual, build_model, check_arch, parse_arch
from svconv.models.aol_nets import aol_fc, aol_patchwise
from svconv.models.channels import FirstChannels, PadChannels, PadTo
from svconv.models.resnet import resnet18
from svconv.models.vgg import vgg19

MNIST = ((1, 28, 28), (0.1307,), (0.3081,))
CIFAR = ((3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def _structural_types() -> tuple[type, ...]:
    from svconv.layers import SOC, SOCTT, AOLConv2d, AOLLinear, InvertibleDownsampling, MaxMin
    from svconv.tt import TTConv2d

    return (
        nn.Sequential, Residual, Normalize, nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, nn.Flatten,
        nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, TTConv2d, SOC, SOCTT, AOLConv2d, AOLLinear, MaxMin,
        InvertibleDownsampling, FirstChannels, PadChannels, PadTo,
    )  # fmt: skip


def check_structure(model: nn.Module) -> None:
    """Normalize first, and only the modules generic walkers know (children of TT/SOC/AOL layers aside)."""
    assert isinstance(model[0], Normalize)
    allowed = _structural_types()
    for name, m in model.named_modules():
        if "parametrizations" in name.split("."):  # AOL's weight parametrisation: not a layer of the forward pass
            continue
        assert isinstance(m, allowed), f"{name}: {type(m).__name__} is not a structural module"


def build(arch, data, rank=None, method="none", num_classes=10):
    from svconv.methods import check_compatible

    check_compatible(method, arch, rank)  # what a TrialConfig checks before a trial builds its model
    shape, mean, std = data
    return build_model(arch, num_classes, shape, mean, std, rank=rank)


def forward(model, shape, batch=2):
    model.eval()
    with torch.no_grad():
        return model(torch.rand(batch, *shape))


def test_names_and_errors():
    for name in ("small-cnn", "lipconvnet-5", "lipconvnet-40", "wrn-16-10", "wrn-28-4", "vgg19", "resnet18", "aol-fc"):
        assert check_arch(name) == name
    assert parse_arch("wrn-16-10").depth == 16 and parse_arch("wrn-16-10").width == 10
    assert parse_arch("lipconvnet-20").depth == 20 and parse_arch("aol-medium").family == "aol"
    for bad in ("resnet50", "wrn-16", "lipconvnet-7", "wrn-15-10", "VGG19", ""):
        with pytest.raises(ValueError, match="small-cnn, lipconvnet-N .* aol-fc"):
            check_arch(bad)
    assert len(ARCH_PATTERNS) == 12


def test_narrow_names_lipconvnet_n_w_and_aol_fc_w():
    """lipconvnet-N-W: W channels in the first block (32 in lipconvnet-N); aol-fc-W: W units per layer."""
    from svconv.config import TrialConfig
    from svconv.models import tt_rank_limit

    spec = parse_arch("lipconvnet-5-4")
    assert (spec.family, spec.depth, spec.width) == ("lipconvnet", 5, 4) and parse_arch("lipconvnet-5").width is None
    assert (parse_arch("aol-fc-128").family, parse_arch("aol-fc-128").width) == ("aol", 128)
    for bad, why in (("lipconvnet-5-0", "W >= 1"), ("lipconvnet-7-4", "multiple of 5"), ("aol-fc-7", "even W")):
        with pytest.raises(ValueError, match=why):
            check_arch(bad)
    narrow = build("lipconvnet-5-4", MNIST, method="soc")
    widths = [m.channels for m in narrow.modules() if hasattr(m, "channels")]
    assert widths == [8, 32, 64, 128, 256, 128]  # 4 -> 8, 16, ... (x4 by the invertible downsampling), classifier
    assert forward(narrow, MNIST[0]).shape == (2, 10)
    # the rank limit follows the width: rank 100 compresses no layer at 4 channels, some at 32
    assert tt_rank_limit("lipconvnet-5-4") < 100 < tt_rank_limit("lipconvnet-5")
    with pytest.raises(ValueError, match="rank must be below"):
        TrialConfig(arch="lipconvnet-5-4", method="soc", rank=100)
    fc = build("aol-fc-128", MNIST, method="aol")
    assert [m.out_features for m in fc.modules() if isinstance(m, nn.Linear)] == [128] * 8
    assert forward(fc, MNIST[0]).shape == (2, 10)


def test_build_model_argument_errors():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("small-cnn", 1, (1, 28, 28), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="input_shape"):
        build_model("small-cnn", 10, (28, 28), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="one value per input channel"):
        build_model("small-cnn", 10, (3, 32, 32), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="no TT variant"):
        build_model("aol-small", 10, (3, 32, 32), (0.5,) * 3, (0.5,) * 3, rank=4)
    with pytest.raises(ValueError, match="rank"):
        build_model("small-cnn", 10, (3, 32, 32), (0.5,) * 3, (0.5,) * 3, rank=0)


def test_the_registry_is_one_dict_and_build_model_knows_no_methods():
    import inspect

    assert ARCH_PATTERNS == tuple(MODELS) and {e.family for e in MODELS.values()} == {
        "small-cnn", "lipconvnet", "wrn", "vgg19", "resnet18", "aol"}  # fmt: skip
    assert "method" not in inspect.signature(build_model).parameters


@pytest.mark.parametrize("data", [MNIST, CIFAR], ids=["mnist", "cifar"])
@pytest.mark.parametrize("rank", [None, 4])
def test_small_cnn_and_small_wrn(data, rank):
    from svconv.tt import TTConv2d

    for arch in ("small-cnn", "wrn-10-1"):
        model = build(arch, data, rank=rank)
        check_structure(model)
        assert forward(model, data[0]).shape == (2, 10)
        n_tt = sum(isinstance(m, TTConv2d) for m in model.modules())
        if rank is None:
            assert n_tt == 0 and model.tt_report is None
        else:  # every conv but the first (3x3 convs and the 1x1 shortcuts of WRN alike)
            n_conv = sum(isinstance(m, nn.Conv2d) and not _inside_tt(model, m) for m in model.modules())
            assert n_tt >= 2 and n_conv == 1


@pytest.mark.parametrize("size", [8, 7])
def test_wrn_shortcuts_are_parameter_free_by_default_and_their_bound_is_their_norm(size):
    """wrn-D-W pools and zero-pads where the shape changes (Senderovich et al.'s WRN-16-10), wrn-D-W-conv has
    1x1 convs there; each parameter-free shortcut's bound equals its dense operator's norm (odd maps too)."""
    from svconv.metrics import network_lipschitz_bound
    from svconv.models.blocks import Residual
    from svconv.spectrum import dense_operator

    data = ((3, size, size), CIFAR[1], CIFAR[2])
    free, conv = build("wrn-10-1", data), build("wrn-10-1-conv", data)
    assert forward(free, data[0]).shape == forward(conv, data[0]).shape == (2, 10)
    assert sum(p.numel() for p in conv.parameters()) - sum(p.numel() for p in free.parameters()) == 16 * 32 + 32 * 64
    shortcuts = [m.shortcut for m in free.modules() if isinstance(m, Residual) and m.shortcut is not None]
    assert len(shortcuts) == 2 and all(sum(p.numel() for p in s.parameters()) == 0 for s in shortcuts)
    assert all(isinstance(s[-1], PadChannels) for s in shortcuts)
    half = (size + 1) // 2  # the map after the first stride-2 block
    for s, shape in zip(shortcuts, [(16, size, size), (32, half, half)]):
        norm = float(torch.linalg.matrix_norm(dense_operator(s, shape, dtype=torch.float64), 2))
        assert norm == pytest.approx(network_lipschitz_bound(s, shape), rel=1e-9)


def _inside_tt(model, module):
    from svconv.tt import TTConv2d

    return any(isinstance(p, TTConv2d) and any(c is module for c in p.modules()) for p in model.modules())


def test_real_sizes_of_the_big_networks():
    """The published networks at full width: parameter counts and one CIFAR image through each."""
    counts = {"wrn-16-10": (16.8e6, 16.9e6), "wrn-16-10-conv": (17.0e6, 17.3e6), "vgg19": (20.0e6, 20.1e6), "resnet18": (11.1e6, 11.2e6)}
    for arch, (lo, hi) in counts.items():
        torch.manual_seed(0)
        model = build(arch, CIFAR)
        n = sum(p.numel() for p in model.parameters())
        assert lo <= n <= hi, (arch, n)
        check_structure(model)
        assert forward(model, CIFAR[0], batch=1).shape == (1, 10)
    wrn = build("wrn-16-10", CIFAR)
    widths = sorted({m.out_channels for m in wrn.modules() if isinstance(m, nn.Conv2d)})
    assert widths == [16, 160, 320, 640]


@pytest.mark.parametrize("data", [MNIST, CIFAR], ids=["mnist", "cifar"])
def test_vgg_and_resnet_at_small_width_with_tt(data):
    from svconv.tt import TTConv2d, to_tt

    shape, mean, std = data
    for net in (vgg19(shape[0], 100, width=4), resnet18(shape[0], 100, width=4)):
        model = nn.Sequential(Normalize(mean, std), net)
        assert forward(model, shape).shape == (2, 100)
        to_tt(model, 3, skip_first=True)
        assert sum(isinstance(m, TTConv2d) for m in model.modules()) >= 15
        check_structure(model)
        assert forward(model, shape).shape == (2, 100)


def _soc_layers(model: nn.Module) -> list[nn.Module]:
    """The SOC and SOC-TT layers of a model in order (an SOC-TT's core, itself an SOC, is not counted)."""
    from svconv.layers import SOC, SOCTT

    out, parents = [], []
    for name, m in model.named_modules():
        if isinstance(m, (SOC, SOCTT)) and not any(name.startswith(p + ".") for p in parents):
            out.append(m)
            parents.append(name)
    return out


def test_lipconvnet_full_size_matches_the_reference():
    """LipConvNet-N of Singla & Feizi at full width (not run: its 1024-channel SOCs are slow on CPU).

    5 blocks of N/5 ``SOC -> MaxMin``; widths 32 * 2^b inside block b, doubled by its last (strided) layer,
    which is an invertible downsampling (c -> 4c) before an SOC on max(4c, 2c) channels, 1x1 in block 5;
    a final 1x1 SOC on 1024 channels whose first 10 are the scores. With a rank, SOC-TT wherever it has fewer
    weights (here every layer), laid out as Senderovich et al.'s code: ``U`` before the downsampling, an SOC
    core on ``max(4 r1, r2)`` channels after it.
    """
    from svconv.layers import SOCTT, InvertibleDownsampling, MaxMin

    model = build("lipconvnet-5", CIFAR, method="soc")
    check_structure(model)
    socs = _soc_layers(model)
    assert [m.channels for m in socs] == [64, 256, 512, 1024, 2048, 1024]
    assert [m.kernel_size for m in socs] == [3, 3, 3, 3, 1, 1]
    assert sum(isinstance(m, InvertibleDownsampling) for m in model.modules()) == 5
    assert sum(isinstance(m, MaxMin) for m in model.modules()) == 5
    assert [m.n for m in model.modules() if isinstance(m, FirstChannels)] == [128, 256, 512, 1024, 10]
    assert not any(isinstance(m, PadTo) for m in model.modules())  # CIFAR is 32x32 already

    model = build("lipconvnet-10", MNIST, rank=16, method="soc")
    check_structure(model)
    socs = _soc_layers(model)
    assert [type(m).__name__ for m in socs] == ["SOCTT"] * 11
    assert [m.core.channels for m in socs] == [16, 64] * 5 + [16]
    assert [m.ranks for m in socs] == [(1, 16)] + [(16, 16)] * 9 + [(16, 10)]
    assert all(m.rank == 16 for m in socs if isinstance(m, SOCTT))
    assert sum(isinstance(m, MaxMin) for m in model.modules()) == 10
    assert isinstance(model.net[0], PadTo) and model.net[0].size == 32  # MNIST's 28x28 padded to 32x32


@pytest.mark.parametrize("data", [MNIST, CIFAR], ids=["mnist", "cifar"])
@pytest.mark.parametrize("rank", [None, 2])
def test_narrow_lipconvnet_runs_and_is_one_lipschitz(data, rank):
    """The same network at init_channels=2: the forward pass, and ||f(x) - f(y)|| <= ||x - y||."""
    from svconv.layers import SOCTT
    from svconv.models.lipconvnet import lipconvnet

    torch.manual_seed(0)
    shape = data[0]
    net = lipconvnet(10, shape[0], 10, shape[1:], rank=rank, init_channels=2).double().eval()
    model = nn.Sequential(Normalize(data[1], data[2]), net)
    check_structure(model)
    socs = _soc_layers(net)
    # at rank 2 the layers 1 -> 2 (mnist) and 2 -> 4 (stride 2) would not shrink: SOC-TT everywhere else
    n_tt = 0 if rank is None else 11 - (2 if shape[0] == 1 else 1)
    assert len(socs) == 11 and sum(isinstance(m, SOCTT) for m in socs) == n_tt
    x, y = torch.rand(2, 4, *shape, dtype=torch.float64)
    with torch.no_grad():
        fx, fy = net(x), net(y)
    assert fx.shape == (4, 10)
    assert torch.all((fx - fy).norm(dim=1) <= (x - y).flatten(1).norm(dim=1) * (1 + 1e-4))


def test_lipconvnet_refuses_large_inputs():
    with pytest.raises(ValueError, match="at most 32"):
        build_model("lipconvnet-5", 10, (3, 64, 64), (0.5,) * 3, (0.5,) * 3)


def test_aol_nets():
    from svconv.layers import AOLConv2d, AOLLinear

    model = build("aol-small", CIFAR, method="aol")
    check_structure(model)
    assert sum(isinstance(m, AOLConv2d) for m in model.modules()) == 14
    assert sum(isinstance(m, AOLLinear) for m in model.modules()) == 14
    assert [m.out_features for m in model.modules() if isinstance(m, AOLLinear)][0] == 8 * 8 * 16
    assert forward(model, CIFAR[0]).shape == (2, 10)
    tiny = ((1, 8, 8), (0.5,), (0.5,))  # the wide variants at a small input size
    for arch, units in (("aol-medium", 2 * 2 * 32), ("aol-large", 2 * 2 * 48), ("aol-fc", 4 * 8 * 8)):
        model = build(arch, tiny, method="aol")
        check_structure(model)
        assert [m.out_features for m in model.modules() if isinstance(m, AOLLinear)][0] == units
        assert forward(model, tiny[0]).shape == (2, 10)
    net = aol_fc(1, 10, (28, 28), width=64, depth=3)
    assert sum(isinstance(m, AOLLinear) for m in net.modules()) == 3
    net = aol_patchwise(16, 1, 10, (28, 28), channels=24, conv_layers=2, dense_layers=2)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_first_channels_and_padding_are_one_lipschitz_leaves():
    fc = FirstChannels(3)
    x = torch.randn(2, 5, 4, 4)
    assert torch.equal(fc(x), x[:, :3]) and fc.lipschitz_bound((5, 4, 4)) == 1.0
    with pytest.raises(ValueError, match="channels >= 3"):
        fc(torch.randn(2, 2))
    widen = PadChannels(8)
    z = widen(x)
    assert z.shape == (2, 8, 4, 4) and torch.equal(z[:, :5], x) and not z[:, 5:].any()
    assert widen.lipschitz_bound((5, 4, 4)) == 1.0
    with pytest.raises(ValueError, match="channels <= 8"):
        widen(torch.randn(2, 9, 4, 4))
    pad = PadTo(32)
    y = pad(x)
    assert y.shape == (2, 5, 32, 32) and torch.allclose(y.norm(), x.norm())
    assert pad.lipschitz_bound((5, 4, 4)) == 1.0
