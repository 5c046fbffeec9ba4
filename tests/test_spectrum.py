"""svconv.spectrum against the explicit operator matrix: every singular value, bounds as bounds."""

from __future__ import annotations

import functools
import zlib

import pytest
import torch
from torch import nn

from svconv.spectrum import (
    clip_conv_singular_values,
    conv_singular_values,
    conv_spectral_norm,
    dense_operator,
    gram_iteration_bound,
    periodic_conv,
    power_iteration,
    power_qr,
)


def dense_svdvals(weight: torch.Tensor, input_size, stride) -> torch.Tensor:
    """All singular values of the periodic operator, from its dense float64 matrix."""
    w = weight.detach().double().cpu()
    op = functools.partial(periodic_conv, weight=w, stride=stride)
    A = dense_operator(op, (w.shape[1], *input_size), dtype=torch.float64)
    return torch.linalg.svdvals(A)


# (c_out, c_in, kernel, input_size, stride): c_in != c_out, k in {1, 2, 3, 5}, non-square kernels and
# inputs, strides 1, 2, 3 (also per-dimension), 2-D and 3-D, wide and tall transfer matrices.
SHAPES = [
    (3, 5, (3, 3), (6, 6), 1),
    (5, 2, (1, 1), (4, 6), 1),
    (4, 3, (2, 2), (5, 7), 1),
    (2, 4, (5, 5), (6, 5), 1),
    (3, 2, (3, 1), (4, 6), 1),
    (4, 3, (3, 3), (6, 8), 2),
    (6, 2, (2, 3), (4, 6), 2),
    (2, 3, (5, 3), (6, 6), 3),
    (4, 2, (3, 2), (6, 4), (3, 2)),
    (8, 1, (3, 3), (6, 6), 2),  # c_out > c_in * s^d: tall transfer matrices
    (3, 2, (3, 3, 3), (4, 4, 4), 1),
    (2, 3, (2, 1, 3), (4, 3, 5), 1),
    (3, 2, (3, 3, 3), (4, 4, 4), 2),
    (2, 2, (1, 2, 3), (3, 6, 3), 3),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c_out,c_in,k,n,s", SHAPES)
def test_all_singular_values_match_dense_operator(c_out, c_in, k, n, s, dtype):
    torch.manual_seed(zlib.crc32(repr((c_out, c_in, k, n, s)).encode()))  # not hash(): PYTHONHASHSEED varies it
    w = torch.randn(c_out, c_in, *k, dtype=dtype)
    ours = conv_singular_values(w, n, s)
    truth = dense_svdvals(w, n, s)
    assert ours.dtype == dtype and ours.device == w.device
    assert ours.shape == truth.shape  # the count: prod(m) * min(c_out, c_in * prod(s))
    assert torch.all(ours[:-1] >= ours[1:]), "descending"
    # float32: the Gram matrix squares the condition number, so small values carry sqrt(eps) * sigma_max
    atol = 1e-10 if dtype == torch.float64 else 2e-3
    torch.testing.assert_close(ours.double(), truth, rtol=0, atol=atol * truth[0].item())
    torch.testing.assert_close(conv_spectral_norm(w, n, s).double(), truth[0], rtol=1e-5, atol=0)


def test_singular_values_respond_to_the_kernel():
    # A guard against a test that cannot fail: transposing the kernel's spatial axes changes the operator
    # of a non-symmetric stride-2 layer, and the spectra must then differ.
    torch.manual_seed(1)
    w = torch.randn(3, 2, 3, 2, dtype=torch.float64)
    a = conv_singular_values(w, (6, 6), (2, 1))
    b = conv_singular_values(w.flip(-1), (6, 6), (1, 2)[::-1])
    assert a.shape == dense_svdvals(w, (6, 6), (2, 1)).shape
    assert not torch.allclose(conv_singular_values(w * 2, (6, 6), (2, 1)), a)
    assert torch.allclose(b, dense_svdvals(w.flip(-1), (6, 6), (2, 1)))


@pytest.mark.parametrize("stride", [1, 2])
def test_clipping_repeated_reaches_the_target(stride):
    torch.manual_seed(2)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    n = (8, 8)
    target = 0.5 * conv_spectral_norm(w, n, stride).item()
    once = clip_conv_singular_values(w, n, target, stride=stride, n_iter=1)
    many = clip_conv_singular_values(w, n, target, stride=stride, n_iter=60)
    assert many.shape == w.shape and many.dtype == w.dtype
    # one pass then restriction to 3x3 overshoots (as docs/design.md says); repeating converges
    assert conv_spectral_norm(once, n, stride).item() > 1.05 * target
    true_norm = dense_svdvals(many, n, stride)[0].item()
    assert true_norm <= 1.01 * target
    assert true_norm >= 0.9 * target  # clipping, not shrinking everything


@pytest.mark.parametrize("stride", [1, 2])
def test_full_support_kernel_is_clipped_exactly_in_one_step(stride):
    torch.manual_seed(3)
    n = (4, 4)
    w = torch.randn(3, 2, *n, dtype=torch.float64)
    before = dense_svdvals(w, n, stride)
    target = before[len(before) // 3].item()
    after = dense_svdvals(clip_conv_singular_values(w, n, target, stride=stride), n, stride)
    torch.testing.assert_close(after, before.clamp(max=target), rtol=0, atol=1e-10)
    assert (before < target).any()  # values under the target were there, and stayed unchanged


def test_clipping_keeps_dtype_and_device_float32():
    w = torch.randn(2, 2, 3, 3)
    out = clip_conv_singular_values(w, 6, 0.1, n_iter=2)
    assert out.dtype == torch.float32 and out.device == w.device and out.shape == w.shape


@pytest.mark.parametrize(
    "c_out,c_in,k,n,s",
    [(4, 3, (3, 3), (6, 6), 1), (3, 5, (2, 3), (6, 4), 2), (3, 2, (3, 3, 3), (4, 4, 4), 1), (6, 6, (1, 1), (4, 4), 1)],
)
def test_gram_bound_is_a_tight_upper_bound(c_out, c_in, k, n, s):
    torch.manual_seed(4)
    w = torch.randn(c_out, c_in, *k, dtype=torch.float64)
    exact = dense_svdvals(w, n, s)[0].item()
    for t in range(0, 7):
        assert gram_iteration_bound(w, n, n_iter=t, stride=s).item() >= exact * (1 - 1e-12)
    assert gram_iteration_bound(w, n, stride=s).item() <= exact * 1.001


def test_gram_bound_does_not_overflow():
    w = 1e6 * torch.randn(4, 4, 3, 3)
    bound = gram_iteration_bound(w, 8, n_iter=12)
    assert torch.isfinite(bound)
    assert bound.item() >= conv_spectral_norm(w, 8).item() * (1 - 1e-4)


def _conv(padding_mode: str, stride: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(3, 4, k, stride=stride, padding=k // 2, padding_mode=padding_mode, bias=True).double()


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("stride", [1, 2])
def test_power_iteration_and_power_qr_match_dense(padding_mode, stride):
    torch.manual_seed(5)
    conv = _conv(padding_mode, stride)
    shape = (3, 6, 6)
    truth = torch.linalg.svdvals(dense_operator(conv, shape))
    gen = torch.Generator().manual_seed(0)
    sigma, v = power_iteration(conv, shape, n_iter=500, generator=gen)
    assert v.shape == shape
    # power iteration converges at the rate (sigma_2 / sigma_1)^2: zeros padding often has a tiny gap
    gap = 1 - (truth[1] / truth[0]).item()
    assert sigma.item() == pytest.approx(truth[0].item(), rel=1e-6 if gap > 0.01 else 2e-3)
    assert sigma.item() <= truth[0].item() * (1 + 1e-9)
    # oversampled block (k + 3 columns) converges at sigma_(k+4) / sigma_k
    top = power_qr(conv, shape, k=6, n_iter=500, generator=gen)[:3]
    torch.testing.assert_close(top, truth[:3], rtol=1e-6, atol=0)
    assert conv.weight.grad is None  # estimators never back-propagate into the weights


def test_power_iteration_warm_start_continues():
    torch.manual_seed(6)
    conv = _conv("zeros", 1)
    shape = (3, 6, 6)
    truth = torch.linalg.svdvals(dense_operator(conv, shape))[0].item()
    cold, _ = power_iteration(conv, shape, n_iter=40, generator=torch.Generator().manual_seed(1))
    _, v = power_iteration(conv, shape, n_iter=30, generator=torch.Generator().manual_seed(1))
    warm, _ = power_iteration(conv, shape, n_iter=10, v=v)
    assert warm.item() == pytest.approx(cold.item(), rel=1e-12)  # 30 + 10 steps == 40 steps
    assert warm.item() <= truth * (1 + 1e-9)  # a Rayleigh quotient is a lower bound


def test_estimators_on_conv_followed_by_batch_norm_in_eval_mode():
    torch.manual_seed(7)
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.normal_()
        bn.bias.normal_()
    model = nn.Sequential(_conv("reflect", 2), bn).eval()
    shape = (3, 6, 6)
    truth = torch.linalg.svdvals(dense_operator(model, shape))
    assert power_iteration(model, shape, n_iter=300)[0].item() == pytest.approx(truth[0].item(), rel=1e-6)
    torch.testing.assert_close(power_qr(model, shape, k=2, n_iter=300), truth[:2], rtol=1e-5, atol=0)


def test_dense_operator_of_a_linear_layer_is_its_matrix():
    lin = nn.Linear(5, 3).double()
    torch.testing.assert_close(dense_operator(lin, (5,)), lin.weight.detach())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: conv_singular_values(torch.randn(2, 2, 3, 3), (7, 7), 2), "stride must divide"),
        (lambda: conv_singular_values(torch.randn(2, 2, 5, 5), (4, 4)), "input_size must be at least the kernel"),
        (lambda: conv_singular_values(torch.randn(2, 2, 3), (4,)), "weight must have 4 or 5 dimensions"),
        (lambda: conv_singular_values(torch.randn(2, 2, 3, 3), (4, 4, 4)), "input_size must be an int or a sequence of 2"),
        (lambda: conv_singular_values(torch.randn(2, 2, 3, 3), 4, 0), "stride must be positive"),
        (lambda: clip_conv_singular_values(torch.randn(2, 2, 3, 3), 4, 0.0), "max_sv must be a positive number"),
        (lambda: clip_conv_singular_values(torch.randn(2, 2, 3, 3), 4, -1.0), "max_sv must be a positive number"),
        (lambda: clip_conv_singular_values(torch.randn(2, 2, 3, 3), 4, 1.0, n_iter=0), "n_iter must be an int >= 1"),
        (lambda: gram_iteration_bound(torch.randn(2, 2, 3, 3), 4, n_iter=-1), "n_iter must be an int >= 0"),
        (lambda: power_qr(nn.Linear(3, 3), (3,), k=4), "k must be at most"),
        (lambda: power_iteration(nn.Linear(3, 3), (3,), v=torch.ones(4)), "v must have shape"),
        (lambda: conv_singular_values(torch.randn(2, 2, 3, 3).to(torch.int64), 4), "real floating-point"),
    ],
)
def test_errors_name_the_argument_and_allowed_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.cuda
def test_cuda_matches_cpu_and_stays_on_device():
    torch.manual_seed(8)
    w = torch.randn(8, 6, 3, 3, dtype=torch.float64)
    wc = w.cuda()
    sv = conv_singular_values(wc, (8, 8), 2)
    assert sv.is_cuda
    torch.testing.assert_close(sv.cpu(), conv_singular_values(w, (8, 8), 2))
    clipped = clip_conv_singular_values(wc, (8, 8), 1.0, stride=2, n_iter=3)
    assert clipped.is_cuda
    torch.testing.assert_close(clipped.cpu(), clip_conv_singular_values(w, (8, 8), 1.0, stride=2, n_iter=3))
    assert gram_iteration_bound(wc, 8).is_cuda
    conv = nn.Conv2d(6, 8, 3, padding=1).double().cuda()
    sigma, v = power_iteration(conv, (6, 8, 8), n_iter=50)
    assert sigma.is_cuda and v.is_cuda
    assert power_qr(conv, (6, 8, 8), k=2, n_iter=50).is_cuda
