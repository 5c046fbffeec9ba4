"""SV-control methods against ground truth: exact periodic spectra and the dense operator of each layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svconv.methods import METHODS, check_compatible, check_method, get_method
from svconv.layers import ConvBN, bn_lipschitz
from svconv.methods.base import grid_and_stride
from svconv.models import build_model
from svconv.spectrum import conv_spectral_norm, dense_operator

MNIST = dict(num_classes=10, input_shape=(1, 12, 12), mean=(0.5,), std=(0.25,))


def dense_norm(module, input_shape) -> float:
    was = module.training
    module.eval()
    try:
        A = dense_operator(module, input_shape, dtype=torch.float64)
        # Top eigenvalue of the smaller Gram matrix: the same value as the SVD's, several times cheaper.
        G = A @ A.T if A.shape[0] < A.shape[1] else A.T @ A
        return float(torch.linalg.eigvalsh(G)[-1].clamp_min(0).sqrt())
    finally:
        module.train(was)


def convs_and_shapes(method):
    return [(layer, layer.module) for layer in method.layers]


def scaled(model: nn.Module, factor: float = 3.0) -> nn.Module:
    """Blow the weights up so that every layer starts well above the target."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.mul_(factor)
    return model


def small(rank=None, seed=0, shape=(1, 12, 12)):
    torch.manual_seed(seed)
    model = build_model("small-cnn", 10, shape, (0.5,) * shape[0], (0.25,) * shape[0], rank=rank)
    return scaled(model.double())


def test_registry_names_and_errors():
    # the registry holds every method module of svconv.methods; these are the ones every release has
    assert {"none", "clip", "division", "fastclip", "gram", "aol", "soc"} <= set(METHODS)
    with pytest.raises(ValueError, match="known methods: " + ", ".join(METHODS)):
        check_method("sedghi")
    with pytest.raises(ValueError, match="known methods"):
        get_method("bogus")
    for bad in (dict(clip_to=0), dict(clip_every=0), dict(clip_iters=1.5), dict(power_iters=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            get_method("clip", **bad)


@pytest.mark.parametrize(
    "method, arch, rank, match",
    [
        ("aol", "wrn-16-10", None, "needs an architecture of family aol"),
        ("clip", "aol-small", None, "needs method 'aol'"),
        ("soc", "vgg19", None, "needs an architecture of family lipconvnet"),
        ("division", "lipconvnet-5", 16, "needs method 'soc'"),
        ("aol", "aol-fc", 8, "no TT variant"),
        ("clip", "small-cnn", 0, "rank must be"),
        ("clip", "wrn-15-2", None, "6n \\+ 4"),
    ],
)
def test_check_compatible_refuses(method, arch, rank, match):
    with pytest.raises(ValueError, match=match):
        check_compatible(method, arch, rank)


def test_check_compatible_accepts():
    for method, arch, rank in [("soc", "lipconvnet-10", 32), ("aol", "aol-large", None), ("clip", "wrn-16-10", 192)]:
        check_compatible(method, arch, rank)


def test_step_protocol_and_timing_bookkeeping():
    model = small()
    method = get_method("division", clip_every=2)
    with pytest.raises(RuntimeError, match="attach"):
        method.step(model, 0)
    method.attach(model, (1, 12, 12))
    assert [layer.kind for layer in method.layers] == ["conv", "conv", "bn", "conv", "linear"]
    assert method.step(model, 1) is False and method.n_control_steps == 0 and method.control_time_s == 0
    assert method.step(model, 2) is True and method.n_control_steps == 1 and method.control_time_s > 0
    spent = method.control_time_s
    method.enforce(model)  # unconditional, and timed like a scheduled step
    assert method.n_control_steps == 2 and method.control_time_s > spent
    with pytest.raises(ValueError, match="attached to another model"):
        method.step(small(), 4)


def test_clip_brings_every_exact_norm_to_target():
    model = small()
    method = get_method("clip", clip_to=1.0, clip_iters=30)
    method.attach(model, (1, 12, 12))
    before = {layer.name: float(conv_spectral_norm(layer.module.weight.detach(), *grid_and_stride(layer.module, layer.spatial)))
              for layer in method.layers if layer.kind == "conv"}
    assert min(before.values()) > 1.5
    method.step(model, 0)
    est = method.estimate(model)
    for layer in method.layers:
        m = layer.module
        if layer.kind == "conv":
            exact = float(conv_spectral_norm(m.weight.detach(), *grid_and_stride(m, layer.spatial)))
            assert exact <= 1.01, (layer.name, exact)
            assert est[layer.name] == pytest.approx(exact, rel=1e-6)
            if m.padding_mode == "circular":  # periodic layer: the exact norm is the layer's own
                assert dense_norm(m, layer.input_shape) == pytest.approx(exact, rel=1e-6)
            else:  # zeros padding embeds in the larger periodic grid: an honest bound
                assert dense_norm(m, layer.input_shape) <= exact * (1 + 1e-6)
        else:
            assert float(torch.linalg.matrix_norm(m.weight.detach(), ord=2)) == pytest.approx(1.0, rel=1e-6)


def test_clip_tt_layers_through_the_core():
    model = small(rank=4)
    method = get_method("clip", clip_to=1.0, clip_iters=30)
    method.attach(model, (1, 12, 12))
    tts = [layer for layer in method.layers if layer.kind == "tt"]
    assert len(tts) == 2
    method.step(model, 0)
    for layer in tts:
        # The full operator (frames included) of the periodic layer: exact after orthogonalisation.
        full = float(conv_spectral_norm(layer.module.full_weight().detach(), *grid_and_stride(layer.module.core, layer.spatial)))
        assert full <= 1.01
        assert method.estimate(model)[layer.name] == pytest.approx(full, rel=1e-4)


@pytest.mark.parametrize("rank", [None, 4])
def test_division_power_estimate_below_target_and_dense_norm_close(rank):
    """After a step every power estimate is <= c, and (60 warm steps) the true norm is close to c; a layer
    already below c is left alone (division by max(1, sigma / c)); TT layers through the core."""
    model = small(rank=rank)
    head = model.net[-1]
    with torch.no_grad():
        head.weight.mul_(0.5 / float(torch.linalg.matrix_norm(head.weight, ord=2)))
    head_before = head.weight.clone()
    method = get_method("division", clip_to=1.0, power_iters=60)
    method.attach(model, (1, 12, 12))
    assert [layer.kind for layer in method.layers].count("tt") == (0 if rank is None else 2)
    assert max(method.estimate(model).values()) > 1.5  # fresh estimates before any control step
    method.step(model, 0)
    est = method.estimate(model)
    assert torch.equal(head.weight, head_before)
    for layer in method.layers:
        assert est[layer.name] <= 1.0 + 1e-6
        target = 0.5 if layer.module is head else 1.0
        if layer.kind == "bn":
            assert bn_lipschitz(layer.module) <= 1.0 + 1e-9
        else:
            assert dense_norm(layer.module, layer.input_shape) == pytest.approx(target, rel=2e-3), layer.name


def test_division_bn_gamma_scaled():
    model = small()
    bn = model.net[3]
    with torch.no_grad():
        bn.weight.fill_(4.0)
        bn.running_var.fill_(0.25)  # Lip = 4 / sqrt(0.25 + eps) ~ 8
    method = get_method("division", clip_to=2.0)
    method.attach(model, (1, 12, 12))
    method.step(model, 0)
    assert bn_lipschitz(bn) == pytest.approx(2.0, rel=1e-6)
    assert dense_norm(bn, (16, 6, 6)) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_fastclip_reaches_target_for_non_circular_padding(padding_mode):
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 3, stride=1, padding=1, padding_mode=padding_mode).double()
    model = scaled(nn.Sequential(conv, nn.ReLU()), 4.0)
    assert dense_norm(conv, (4, 7, 7)) > 3
    method = get_method("fastclip", clip_to=1.0, clip_iters=100, power_iters=10)
    method.attach(model, (4, 7, 7))
    method.step(model, 0)
    assert dense_norm(conv, (4, 7, 7)) == pytest.approx(1.0, rel=0.05)
    assert conv.weight.shape == (6, 4, 3, 3) and conv.padding_mode == padding_mode


def test_fastclip_strided_and_conv_bn_concat():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False).double()
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))
        bn.running_var.uniform_(0.5, 2.0)
    model = scaled(nn.Sequential(conv, bn, nn.ReLU()), 3.0)
    method = get_method("fastclip", clip_to=1.0, clip_iters=100, power_iters=10, bn_concat=True)
    layers = method.attach(model, (3, 8, 8))
    assert layers[0].bn is bn and [layer.kind for layer in layers] == ["conv"]
    method.step(model, 0)
    assert dense_norm(ConvBN(conv, bn), (3, 8, 8)) == pytest.approx(1.0, rel=0.05)
    assert bn.weight.tolist() == [0.5, 1.0, 2.0, 3.0]  # only the conv's own weight moves


def test_fastclip_tt_and_linear():
    model = small(rank=4)
    method = get_method("fastclip", clip_to=1.0, clip_iters=60, power_iters=10)
    method.attach(model, (1, 12, 12))
    method.step(model, 0)
    for layer in method.layers:
        assert dense_norm(layer.module, layer.input_shape) == pytest.approx(1.0, rel=0.05), layer.name


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_gram_rescale_is_an_honest_bound(padding_mode):
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, padding_mode=padding_mode).double()
    model = scaled(nn.Sequential(conv, nn.Flatten(), nn.Linear(5 * 16, 4).double()), 3.0)
    method = get_method("gram", clip_to=1.0)
    method.attach(model, (3, 8, 8))
    method.step(model, 0)
    est = method.estimate(model)
    for layer in method.layers:
        dense = dense_norm(layer.module, layer.input_shape)
        assert dense <= est[layer.name] * (1 + 1e-9)
        assert est[layer.name] == pytest.approx(1.0, rel=1e-6)
        if padding_mode == "circular" or layer.kind == "linear":
            assert dense == pytest.approx(1.0, rel=1e-3)  # exact periodic model: the bound is tight


def test_gram_tt_bound_holds():
    model = small(rank=4)
    method = get_method("gram", clip_to=1.0)
    method.attach(model, (1, 12, 12))
    method.step(model, 0)
    est = method.estimate(model)
    for layer in method.layers:
        assert dense_norm(layer.module, layer.input_shape) <= est[layer.name] * (1 + 1e-6)


def test_none_estimates_without_changing_weights():
    model = small()
    before = [p.clone() for p in model.parameters()]
    method = get_method("none")
    method.attach(model, (1, 12, 12))
    assert method.step(model, 0) is True
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    est = method.estimate(model)
    for layer in method.layers:
        dense = dense_norm(layer.module, layer.input_shape)
        assert est[layer.name] <= dense * (1 + 1e-6) and est[layer.name] > 0.9 * dense


def _narrow_lipconvnet(rank):
    from svconv.models import Normalize
    from svconv.models.lipconvnet import lipconvnet

    return nn.Sequential(Normalize((0.5,), (0.25,)), lipconvnet(5, 1, 10, (28, 28), rank=rank, init_channels=2))


@pytest.mark.parametrize("method_name, arch, shape", [
    ("soc", "lipconvnet-5 narrow", (1, 28, 28)),
    ("soc", "lipconvnet-5 narrow tt", (1, 28, 28)),
    ("aol", "aol patchwise narrow", (1, 8, 8)),
])  # fmt: skip
def test_parametrised_methods_report_norms_at_most_one(method_name, arch, shape):
    """No control step, weights untouched; each layer's estimate is a lower estimate of its dense norm
    and close to it, and that norm is <= 1 (SOC: orthogonal; SOC-TT: orthonormal frames at init; AOL)."""
    from svconv.layers import SOC, SOCTT

    torch.manual_seed(0)
    if arch.startswith("lipconvnet"):  # LipConvNet-5 at init_channels=2: SOC widths 4 .. 128, dense-able
        model = _narrow_lipconvnet(2 if arch.endswith("tt") else None).double()
    else:  # the patch-wise AOL model of aol-small with fewer, narrower layers
        from svconv.models import Normalize
        from svconv.models.aol_nets import aol_patchwise

        net = aol_patchwise(16, 1, 10, shape[1:], channels=32, conv_layers=2, dense_layers=2)
        model = nn.Sequential(Normalize((0.5,), (0.25,)), net).double()
    before = [p.clone() for p in model.parameters()]
    method = get_method(method_name)
    method.attach(model, shape)
    assert method.layers and all(layer.kind == "lipschitz" for layer in method.layers)
    assert method.step(model, 0) is True
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    est = method.estimate(model)
    assert set(est) == {layer.name for layer in method.layers}
    if arch.startswith("lipconvnet"):
        kinds = [type(layer.module) for layer in method.layers]
        # rank 2: SOC-TT wherever it has fewer weights, i.e. every layer but the first (1 -> 4 channels)
        assert len(kinds) == 6 and kinds.count(SOCTT) == (5 if arch.endswith("tt") else 0)
        assert all(k in (SOC, SOCTT) for k in kinds)
    for layer in method.layers:
        dense = dense_norm(layer.module, layer.input_shape)
        assert dense <= 1.0 + 1e-6, layer.name
        assert est[layer.name] <= dense * (1 + 1e-6) and est[layer.name] > 0.9 * dense, layer.name
    assert max(est.values()) <= 1.0 + 1e-6


@pytest.mark.parametrize("name", ["clip", "gram"])
def test_exact_methods_refuse_grouped_or_dilated_convs_and_name_the_alternatives(name):
    from svconv.tt import TTConv2d

    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=2))
    dilated_tt = nn.Sequential(TTConv2d(4, 4, 3, rank=2, padding=2, dilation=2))
    for model, layer in ((grouped, "'0'"), (dilated_tt, "'0.core'")):
        with pytest.raises(ValueError, match=f"{name}.*{layer}.*'division' or 'fastclip'"):
            get_method(name).attach(model, (4, 8, 8))
    get_method("division").attach(grouped, (4, 8, 8))  # the alternative it names accepts the layer
