"""svconv.layers against the explicit operator matrix: AOL, SOC, SOC-TT, MaxMin, downsampling, batch norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from svconv.layers import (
    SOC,
    SOCTT,
    AOLConv2d,
    AOLLinear,
    ConvBN,
    InvertibleDownsampling,
    MaxMin,
    bn_lipschitz,
    bn_scale_shift,
    conv_bn,
    taylor_tail,
)
from svconv.kinds import LayerKind, layer_kind
from svconv.layers.aol import aol, aol_conv_scale, aol_linear_scale
from svconv.layers.soc import skew_exp
from svconv.spectrum import conv_spectral_norm, dense_operator, power_iteration
from svconv.tt import TTConv2d

F64 = torch.float64


def dense_svdvals(module: nn.Module, input_shape) -> torch.Tensor:
    """Every singular value of the module's (affine) operator, descending, from its dense float64 matrix."""
    return torch.linalg.svdvals(dense_operator(module, input_shape, dtype=F64))


# -- AOL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "padding_mode, stride, kernel, c_in, c_out",
    [("zeros", 1, 3, 4, 5), ("circular", 1, 3, 5, 3), ("zeros", 2, 3, 3, 4), ("circular", 2, 5, 3, 3)],
)
def test_aol_conv_is_1_lipschitz(padding_mode, stride, kernel, c_in, c_out):
    torch.manual_seed(0)
    layer = AOLConv2d(c_in, c_out, kernel, stride=stride, padding_mode=padding_mode, dtype=F64)
    with torch.no_grad():
        layer.parametrizations.weight.original.normal_()
        layer.bias.normal_()
    sv = dense_svdvals(layer, (c_in, 6, 6))
    assert sv[0] <= 1 + 1e-10
    assert sv[0] > 0.3  # the rescaling is not a collapse to zero
    assert layer.lipschitz_bound((c_in, 6, 6)) == 1.0
    # Without the rescaling the same kernel is far from 1-Lipschitz (so the check above can fail).
    raw = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, padding_mode=padding_mode, bias=False, dtype=F64)
    with torch.no_grad():
        raw.weight.copy_(layer.parametrizations.weight.original)
    assert dense_svdvals(raw, (c_in, 6, 6))[0] > 1.5


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aol_conv_bound_is_tight_on_nonnegative_kernels_so_every_correlation_shift_counts(kernel, seed):
    """A non-negative kernel under circular padding attains the AOL bound (the constant image is a top singular
    vector), so the dense norm is 1 to rounding. Every shift up to k-1 of the self-correlation enters the
    scale; dropping those beyond k//2 (padding k//2 instead of k-1) leaves a layer of norm about 1.3 here."""
    torch.manual_seed(seed)
    layer = AOLConv2d(2, 3, kernel, padding_mode="circular", dtype=F64)
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(torch.randn(3, 2, kernel, kernel, dtype=F64).abs())
    sv = dense_svdvals(layer, (2, 6, 6))
    assert sv[0] <= 1 + 1e-10
    assert sv[0] >= 1 - 1e-9


def reference_aol_conv2d_rescale(weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``get_aol_conv2d_rescale`` of github.com/berndprach/AOL (src/aol_code/layers/aol/aol_conv2d_rescale.py),
    written out shift by shift for a torch kernel ``(c_out, c_in, k1, k2)``: ``v[i, s, j] = sum_o sum_p
    w[o, i, p] w[o, j, p + s]`` over every shift ``|s| <= k - 1`` (their padding ``k - 1``), then
    ``(sum_{s, j} |v| + epsilon) ** -1/2`` per input channel ``i``."""
    c_out, c_in, k1, k2 = weight.shape
    padded = F.pad(weight, (k2 - 1, k2 - 1, k1 - 1, k1 - 1))
    total = torch.zeros(c_in, dtype=weight.dtype)
    for s1 in range(2 * k1 - 1):
        for s2 in range(2 * k2 - 1):
            shifted = padded[:, :, s1 : s1 + k1, s2 : s2 + k2]
            total += torch.einsum("oip,ojp->ij", weight.flatten(2), shifted.flatten(2)).abs().sum(1)
    return (total + epsilon) ** -0.5


@pytest.mark.parametrize("shape", [(3, 2, 3, 3), (4, 3, 5, 5), (2, 4, 2, 4), (5, 1, 5, 3)])
def test_aol_conv_scale_is_the_formula_of_the_authors_code(shape):
    torch.manual_seed(sum(shape))
    w = torch.randn(*shape, dtype=F64)
    torch.testing.assert_close(aol_conv_scale(w), reference_aol_conv2d_rescale(w, 1e-12), rtol=1e-12, atol=0)


def test_aol_linear_is_1_lipschitz_and_identity_init_is_kept():
    torch.manual_seed(1)
    layer = AOLLinear(7, 4, dtype=F64)
    with torch.no_grad():
        layer.parametrizations.weight.original.normal_()
    assert torch.linalg.matrix_norm(layer.rescaled_weight().detach(), 2) <= 1 + 1e-12
    assert dense_svdvals(layer, (7,))[0] <= 1 + 1e-12
    conv = AOLConv2d(3, 3, 3, dtype=F64)  # dirac init: AOL leaves the identity as it is
    x = torch.randn(2, 3, 5, 5, dtype=F64)
    torch.testing.assert_close(conv(x), x)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (4, 7, 7)),
        (lambda: nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular"), (3, 5, 5)),
        (lambda: nn.Conv1d(2, 5, 4, padding=1), (2, 9)),
        (lambda: nn.Conv3d(2, 2, 3, padding=1, stride=(1, 2, 2)), (2, 3, 4, 4)),
        (lambda: nn.Linear(6, 9), (6,)),
    ],
)
def test_aol_parametrization_on_plain_layers_exports_a_1_lipschitz_plain_layer(make, shape):
    torch.manual_seed(7)
    layer = aol(make().double())
    with torch.no_grad():
        raw = layer.parametrizations.weight.original.normal_().clone()
    sv = dense_svdvals(layer, shape)
    assert 0.2 < sv[0] <= 1 + 1e-10 and layer_kind(layer) is LayerKind.AOL
    # the same layer without the rescaling is not 1-Lipschitz, so the check above can fail
    plain = make().double()
    with torch.no_grad():
        plain.weight.copy_(raw)
    assert dense_svdvals(plain, shape)[0] > 1.2
    parametrize.remove_parametrizations(layer, "weight")  # export: a plain layer with the rescaled weight
    assert type(layer) is type(plain) and not parametrize.is_parametrized(layer)
    torch.testing.assert_close(dense_svdvals(layer, shape), sv)
    assert layer_kind(layer) is not LayerKind.AOL


def test_aol_refuses_padding_that_repeats_outputs():
    with pytest.raises(ValueError, match="padding_mode"):
        aol(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ValueError, match="padding"):
        aol(nn.Conv2d(2, 2, 3, padding=2, padding_mode="circular"))
    with pytest.raises(TypeError, match="Linear or nn.Conv"):
        aol(nn.ConvTranspose2d(2, 2, 3))


def test_aol_layers_load_state_dicts_of_the_earlier_classes():
    """Checkpoints written by the earlier AOLConv2d / AOLLinear (plain ``weight``, ``bias`` parameters) load
    into the parametrised layers and give the same function (that forward, written out, is the reference)."""
    torch.manual_seed(8)
    net = nn.Sequential(AOLConv2d(3, 4, 3, stride=2, padding_mode="circular"), nn.Flatten(), AOLLinear(4 * 9, 5))
    old = {"0.weight": torch.randn(4, 3, 3, 3), "0.bias": torch.randn(4), "2.weight": torch.randn(5, 36), "2.bias": torch.randn(5)}
    net.load_state_dict(old)
    x = torch.rand(2, 3, 6, 6)
    w0 = old["0.weight"] * aol_conv_scale(old["0.weight"]).view(1, -1, 1, 1)
    h = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), w0, old["0.bias"], stride=2).flatten(1)
    w2 = old["2.weight"] * aol_linear_scale(old["2.weight"]).unsqueeze(0)
    torch.testing.assert_close(net(x), F.linear(h, w2, old["2.bias"]))
    assert set(net.state_dict()) == {"0.bias", "0.parametrizations.weight.original", "2.bias", "2.parametrizations.weight.original"}


# -- SOC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode, kernel, n", [("zeros", 3, 5), ("circular", 3, 4), ("zeros", 1, 3), ("circular", 5, 5)])
def test_soc_with_12_terms_is_orthogonal(padding_mode, kernel, n):
    torch.manual_seed(2)
    layer = SOC(4, kernel, train_terms=5, eval_terms=12, padding_mode=padding_mode, dtype=F64)
    with torch.no_grad():
        layer.bias.normal_()
    layer.eval()
    assert layer.terms == 12
    sv = dense_svdvals(layer, (4, n, n))
    assert (sv - 1).abs().max() <= 1e-3
    bound = layer.lipschitz_bound((4, n, n))
    assert sv[0] <= bound + 1e-12 and bound <= 1 + 1e-6  # 1e-12: rounding of the dense SVD
    # The skew part is not trivial: with 1 term the layer is I + L, visibly not orthogonal.
    layer.eval_terms = 1
    assert (dense_svdvals(layer, (4, n, n)) - 1).abs().max() > 0.01


def test_soc_norm_bounds_are_bounds_and_train_terms_differ():
    torch.manual_seed(3)
    layer = SOC(3, 3, train_terms=2, eval_terms=12, max_norm=1.5, padding_mode="zeros", dtype=F64).eval()
    shape = (3, 5, 5)
    kernel = layer.skew_kernel().detach()
    L = nn.Conv2d(3, 3, 3, padding=1, bias=False, dtype=F64)
    with torch.no_grad():
        L.weight.copy_(kernel)
    norm_l = float(dense_svdvals(L, shape)[0])
    b = layer.skew_norm_bound(shape)
    assert norm_l <= b * (1 + 1e-9)
    # The scaling: sqrt(k^2) ||R||_2 of the eval kernel is max_norm up to the power iteration's accuracy.
    scaled = 3 * float(torch.linalg.matrix_norm(kernel.flatten(1), 2))
    assert scaled == pytest.approx(1.5, rel=1e-3) and b <= scaled * (1 + 1e-9)
    layer.train()
    assert layer.terms == 2
    with torch.no_grad():
        sv_train = dense_svdvals(layer, shape)
    bound = layer.lipschitz_bound(shape)
    assert sv_train[0] <= bound and bound == pytest.approx(1 + taylor_tail(b, 2), rel=1e-6)
    assert (sv_train - 1).abs().max() > 1e-2  # two terms are visibly not orthogonal


def test_soc_series_gradients_match_autograd_of_the_plain_series():
    torch.manual_seed(4)
    w = torch.randn(2, 2, 3, 3, dtype=F64)
    kernel = (0.3 * (w - w.transpose(0, 1).flip(2, 3))).requires_grad_()
    x = torch.randn(1, 2, 3, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: skew_exp(a, b, 3, "circular"), (x, kernel))
    # Maps of every size (im2col and conv weight-gradient paths), both paddings, 1x1 kernels.
    for mode, k, n in (("zeros", 3, 5), ("circular", 3, 5), ("zeros", 1, 3), ("zeros", 3, 2), ("circular", 5, 3)):
        w = torch.randn(3, 3, k, k, dtype=F64)
        kernel = (0.3 * (w - w.transpose(0, 1).flip(2, 3))).requires_grad_()
        x = torch.randn(2, 3, n, n, dtype=F64, requires_grad=True)
        y = skew_exp(x, kernel, 4, mode)
        # Reference: the series written with plain convs and autograd.
        p = k // 2
        z, ref = x, x
        for t in range(1, 5):
            zp = F.pad(z, (p, p, p, p), mode="circular") if mode == "circular" else F.pad(z, (p, p, p, p))
            z = F.conv2d(zp, kernel) / t
            ref = ref + z
        torch.testing.assert_close(y, ref)
        g = torch.randn_like(y)
        for mine, theirs in zip(torch.autograd.grad(y, (x, kernel), g), torch.autograd.grad(ref, (x, kernel), g)):
            torch.testing.assert_close(mine, theirs)


def test_soc_norm_estimate_is_the_shared_power_iteration_warm_started_from_its_buffer():
    """SOC's per-forward estimate: ``steps`` of ``u <- R R^T u / ||.||`` from the buffer, then ``v = R^T u``
    normalised (the loop it had before it used ``svconv.spectrum.power_iteration``), and it converges."""
    torch.manual_seed(9)
    layer = SOC(4, 3, init_iters=1, dtype=F64)
    R = layer.raw_skew_kernel().detach().flatten(1)
    u = layer.u.clone()
    v = F.normalize(R.T @ u, dim=0)
    for _ in range(3):
        u = F.normalize(R @ v, dim=0)
        v = F.normalize(R.T @ u, dim=0)
    got = layer._power_steps(R, 3)
    torch.testing.assert_close(layer.u, u)
    torch.testing.assert_close(got, v)
    layer.refresh_norm_(200)
    sigma = float(layer.u @ R @ layer._power_steps(R, 1))
    assert sigma == pytest.approx(float(torch.linalg.matrix_norm(R, 2)), rel=1e-6)


def test_power_iteration_on_a_matrix_matches_the_module_path_and_stops_early():
    torch.manual_seed(10)
    A = torch.randn(5, 7, dtype=F64)
    lin = nn.Linear(7, 5, bias=True, dtype=F64)
    with torch.no_grad():
        lin.weight.copy_(A)
    v0 = torch.randn(7, dtype=F64)
    s_mat, v_mat = power_iteration(A, (7,), n_iter=30, v=v0)
    s_mod, v_mod = power_iteration(lin, (7,), n_iter=30, v=v0)
    torch.testing.assert_close(s_mat, s_mod)
    torch.testing.assert_close(v_mat, v_mod)
    _, _, image = power_iteration(A, (7,), n_iter=30, v=v0, return_image=True)
    torch.testing.assert_close(image, A @ v_mat)
    exact = float(torch.linalg.matrix_norm(A, 2))
    calls = []
    lin.register_forward_hook(lambda *_: calls.append(1))
    s_early, _ = power_iteration(lin, (7,), n_iter=10_000, v=v0, rtol=1e-9)
    assert float(s_early) == pytest.approx(exact, rel=1e-6) and len(calls) < 500
    with pytest.raises(ValueError, match="rtol"):
        power_iteration(A, (7,), rtol=-1.0)
    with pytest.raises(ValueError, match="input_shape"):
        power_iteration(A, (5,))


def test_soc_trains_its_weight():
    torch.manual_seed(5)
    layer = SOC(4, 3)
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        layer.weight.normal_()  # new weights: the persistent power-iteration vector is off
    u0 = layer.u.clone()
    layer(x).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().max() > 0 and layer.bias.grad is not None
    assert not torch.allclose(layer.u, u0)  # a training forward advances the estimate
    layer.eval()
    u1 = layer.u.clone()
    with torch.no_grad():
        layer(x)
    assert torch.equal(layer.u, u1)  # eval mode leaves the estimate alone


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_soctt_with_orthogonal_frames_has_unit_nonzero_singular_values(padding_mode):
    torch.manual_seed(6)
    layer = SOCTT(6, 3, padding_mode=padding_mode, dtype=F64).eval()
    assert layer.frames_orthogonal(1e-10)
    with torch.no_grad():
        layer.V.bias.normal_()
        layer.V.weight.copy_(torch.linalg.qr(torch.randn(6, 3, dtype=F64))[0].view(6, 3, 1, 1))  # V != U^T
    n = 4
    sv = dense_svdvals(layer, (6, n, n))
    r_n = 3 * n * n
    assert (sv[:r_n] - 1).abs().max() <= 1e-3
    assert sv[r_n:].abs().max() <= 1e-9
    assert sv[0] <= layer.lipschitz_bound((6, n, n))
    # Frames far from orthonormal break it; project_frames_ restores it.
    with torch.no_grad():
        layer.U.weight.normal_()
    assert (dense_svdvals(layer, (6, n, n))[:r_n] - 1).abs().max() > 0.1
    layer.project_frames_()
    assert (dense_svdvals(layer, (6, n, n))[:r_n] - 1).abs().max() <= 1e-3


# -- MaxMin and downsampling ---------------------------------------------------------------------


def test_maxmin_permutes_entries_and_is_1_lipschitz():
    torch.manual_seed(7)
    act = MaxMin()
    x, y = torch.randn(2, 10, 4, 4, dtype=F64).unbind(0)
    fx, fy = act(x[None]), act(y[None])
    torch.testing.assert_close(torch.sort(fx.flatten()).values, torch.sort(x.flatten()).values)
    assert (fx - fy).norm() <= (x - y).norm() * (1 + 1e-12)
    torch.testing.assert_close(act(torch.tensor([[3.0, -1.0, 1.0, 2.0]])), torch.tensor([[3.0, 2.0, 1.0, -1.0]]))
    with pytest.raises(ValueError, match="even number of channels"):
        act(torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="input_shape"):
        act.lipschitz_bound((3, 2, 2))


def test_invertible_downsampling_is_an_orthogonal_reshape():
    torch.manual_seed(8)
    down = InvertibleDownsampling(2)
    x = torch.randn(2, 3, 6, 4, dtype=F64)
    y = down(x)
    torch.testing.assert_close(y, F.pixel_unshuffle(x, 2))
    torch.testing.assert_close(down.inverse(y), x)
    x3 = torch.randn(1, 2, 4, 2, 4, dtype=F64)
    torch.testing.assert_close(down.inverse(down(x3)), x3)
    sv = dense_svdvals(down, (2, 4, 2, 4))
    torch.testing.assert_close(sv, torch.ones_like(sv))
    with pytest.raises(ValueError, match="factor"):
        InvertibleDownsampling(0)
    with pytest.raises(ValueError, match="divisible by factor"):
        down(torch.randn(1, 1, 5, 4))


# -- batch norm ----------------------------------------------------------------------------------


def random_bn(c: int, seed: int) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(c, dtype=F64)
    with torch.no_grad():
        bn.weight.normal_()  # negative gammas too
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3.0)
    return bn.eval()


def test_bn_lipschitz_equals_the_dense_norm():
    bn = random_bn(5, 9)
    truth = dense_svdvals(bn, (5, 3, 3))[0]
    assert bn_lipschitz(bn) == pytest.approx(float(truth), rel=1e-12)
    scale, shift = bn_scale_shift(bn)
    x = torch.randn(2, 5, 3, 3, dtype=F64)
    torch.testing.assert_close(bn(x), x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))


@pytest.mark.parametrize("tt", [False, True])
def test_conv_bn_is_one_operator(tt):
    torch.manual_seed(10)
    if tt:
        conv = TTConv2d(4, 5, 3, (3, 4), stride=2, padding=1, padding_mode="circular", dtype=F64)
    else:
        conv = nn.Conv2d(4, 5, 3, stride=2, padding=1, padding_mode="circular", dtype=F64)
    bn = random_bn(5, 11)
    fused = conv_bn(conv, bn)
    assert isinstance(fused, ConvBN)
    x = torch.randn(2, 4, 6, 6, dtype=F64)
    ref = bn(conv(x)).detach()
    fused.train()  # BN stays in its eval (affine) form whatever the flag, and its statistics stay put
    mean = bn.running_mean.clone()
    torch.testing.assert_close(fused(x), ref)
    assert torch.equal(bn.running_mean, mean)
    torch.testing.assert_close(fused.to_conv()(x), ref)
    w, _ = fused.fused_weight()
    truth = dense_svdvals(fused, (4, 6, 6))[0]
    torch.testing.assert_close(conv_spectral_norm(w.detach(), (6, 6), 2), truth, rtol=1e-9, atol=0)
    assert truth <= fused.lipschitz_bound((4, 6, 6)) <= truth * (1 + 1e-8)
    # Not the product of the parts: the fused norm is at most that product and generally below it.
    assert truth <= bn_lipschitz(bn) * float(dense_svdvals(conv, (4, 6, 6))[0]) * (1 + 1e-9)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: AOLConv2d(3, 3, padding_mode="reflect"), "padding_mode"),
        (lambda: AOLConv2d(0, 3), "in_channels"),
        (lambda: AOLConv2d(3, 3, 3, padding=2, padding_mode="circular"), "padding"),
        (lambda: AOLLinear(3, -1), "out_features"),
        (lambda: SOC(4, 2), "kernel_size"),
        (lambda: SOC(0), "channels"),
        (lambda: SOC(4, train_terms=0), "train_terms"),
        (lambda: SOC(4, eval_terms=1.5), "eval_terms"),
        (lambda: SOC(4, max_norm=0), "max_norm"),
        (lambda: SOC(4, padding_mode="reflect"), "padding_mode"),
        (lambda: SOC(4, power_iters=0), "power_iters"),
        (lambda: SOC(4)(torch.randn(1, 3, 4, 4)), "SOC expects input"),
        (lambda: SOC(4).lipschitz_bound((3, 4, 4)), "input_shape"),
        (lambda: SOCTT(4, 0), "rank"),
        (lambda: SOCTT(4, 2.0), "rank"),
        (lambda: bn_scale_shift(nn.BatchNorm2d(3, track_running_stats=False)), "running statistics"),
        (lambda: ConvBN(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5)), "num_features"),
        (lambda: taylor_tail(-1.0, 3), "b must be"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.cuda
def test_soc_on_cuda_matches_cpu():
    torch.manual_seed(12)
    layer = SOC(4, 3, dtype=F64).eval()
    x = torch.randn(2, 4, 5, 5, dtype=F64)
    ref = layer(x)
    torch.testing.assert_close(layer.cuda()(x.cuda()).cpu(), ref)


def test_soc_cheap_bound_is_a_bound_and_refined_when_loose():
    """The kernel bound is >= the exact conv bound; the certificate stays >= the dense norm either way, and a
    loose one (few terms, large norm) is refined to the exact conv bound."""
    torch.manual_seed(3)
    shape = (4, 6, 6)
    tight = SOC(4, 3, train_terms=12, eval_terms=12, padding_mode="circular", dtype=F64).eval()
    loose = SOC(4, 3, train_terms=2, eval_terms=2, max_norm=3.0, padding_mode="circular", dtype=F64).eval()
    for layer in (tight, loose):
        assert layer.cheap_skew_norm_bound() >= layer.skew_norm_bound(shape) * (1 - 1e-12)
        dense = float(torch.linalg.matrix_norm(dense_operator(layer, shape), ord=2))
        assert dense <= layer.lipschitz_bound(shape) * (1 + 1e-12)
    assert 1 <= tight.lipschitz_bound(shape) <= 1 + 1e-9
    assert loose.lipschitz_bound(shape) == pytest.approx(1 + taylor_tail(loose.skew_norm_bound(shape), 2), rel=1e-12)
    assert loose.cheap_skew_norm_bound() > loose.skew_norm_bound(shape) * 1.01  # so the refinement matters


def test_soc_under_cpu_autocast_matches_float32():
    """AMP: the forward and backward of SOC under bf16 autocast run (no dtype clash in the norm estimate)
    and stay close to the float32 result; the norm estimate itself keeps float32."""
    torch.manual_seed(7)
    layer = SOC(8, train_terms=5)
    x = torch.randn(2, 8, 6, 6)
    direction = torch.randn(2, 8, 6, 6)
    y32 = layer(x)
    (g32,) = torch.autograd.grad((y32 * direction).sum(), layer.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = layer(x)
        (g16,) = torch.autograd.grad((y16.float() * direction).sum(), layer.weight)
    assert layer.u.dtype == torch.float32
    torch.testing.assert_close(y16.float(), y32, atol=5e-2, rtol=5e-2)
    assert (g16 - g32).norm() <= 0.1 * g32.norm()
