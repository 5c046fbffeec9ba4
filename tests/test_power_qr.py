"""PowerQR (Boroojeny et al. 2024, Alg. 1, Prop. 2.1) against the dense operator on small shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svconv.spectrum import dense_operator, power_qr, power_qr_triples


def _conv_bn(padding_mode: str, stride: int, seed: int = 0) -> nn.Module:
    """Conv with bias, then eval-mode batch norm: an affine map ``M x + b`` (b != 0), as in Prop. 2.1."""
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.normal_()
        bn.bias.normal_()
    conv = nn.Conv2d(2, 4, 3, stride=stride, padding=1, padding_mode=padding_mode).double()
    return nn.Sequential(conv, bn).eval()


@pytest.mark.parametrize("padding_mode,stride", [("zeros", 1), ("reflect", 2), ("replicate", 1), ("circular", 2)])
def test_top_k_triples_match_the_dense_singular_values_and_vectors(padding_mode, stride):
    module = _conv_bn(padding_mode, stride)
    shape = (2, 4, 4)
    A = dense_operator(module, shape)
    truth = torch.linalg.svdvals(A)
    k = 3
    t = power_qr_triples(module, shape, k=k + 3, n_iter=150, generator=torch.Generator().manual_seed(0))
    # oversampled by 3 columns: the top k converge at the rate sigma_(k+4) / sigma_k per step
    torch.testing.assert_close(t.values[:k], truth[:k], rtol=1e-8, atol=0)
    V, U = t.right.reshape(k + 3, -1), t.left.reshape(k + 3, -1)
    torch.testing.assert_close(V @ V.T, torch.eye(k + 3, dtype=V.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(V[:k] @ A.T, t.values[:k, None] * U[:k], rtol=0, atol=1e-6)  # M v_i = sigma_i u_i
    assert t.right.shape == (k + 3, *shape) and t.left.shape == (k + 3, 4, 4 // stride, 4 // stride)


def test_rayleigh_ritz_values_are_lower_bounds_even_unconverged():
    module = _conv_bn("reflect", 1, seed=1)
    shape = (2, 4, 4)
    truth = torch.linalg.svdvals(dense_operator(module, shape))
    for n_iter in (1, 2, 5):
        values = power_qr(module, shape, k=4, n_iter=n_iter, generator=torch.Generator().manual_seed(n_iter))
        assert bool((values <= truth[:4] * (1 + 1e-12)).all()), n_iter  # Cauchy interlacing


@pytest.mark.parametrize("shift", [0.0, 1.0, 7.5])
def test_the_step_is_subspace_iteration_on_the_shifted_gram_matrix(shift):
    """Prop. 2.1: for ``f(x) = M x + b``, ``X <- QR(mu X + grad_X 0.5 ||f(X) - f(0)||^2)`` is subspace
    iteration on ``M^T M + mu I``; checked against that iteration on the dense matrix, from the same start."""
    module = _conv_bn("zeros", 2, seed=2)
    shape, k, steps = (2, 4, 4), 3, 4
    A = dense_operator(module, shape)
    n = A.shape[1]
    X = torch.randn(k, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    Q = torch.linalg.qr(X.T)[0]
    B = A.T @ A + shift * torch.eye(n, dtype=A.dtype)
    for _ in range(steps):
        Q = torch.linalg.qr(B @ Q)[0]
    t = power_qr_triples(module, shape, k=k, n_iter=steps, generator=torch.Generator().manual_seed(5), shift=shift)
    R = t.right.reshape(k, n).T  # the same span as the iterate (Rayleigh-Ritz rotates within it)
    torch.testing.assert_close(R @ R.T, Q @ Q.T, rtol=0, atol=1e-9)
    if shift:  # the shift matters: the unshifted iteration spans another subspace after 4 steps
        Q0 = torch.linalg.qr(X.T)[0]
        for _ in range(steps):
            Q0 = torch.linalg.qr(A.T @ A @ Q0)[0]
        assert float((Q0 @ Q0.T - Q @ Q.T).abs().max()) > 1e-3


def test_warm_start_continues_the_iteration():
    module = _conv_bn("replicate", 2, seed=3)
    shape = (2, 4, 4)
    cold = power_qr_triples(module, shape, k=3, n_iter=12, generator=torch.Generator().manual_seed(1))
    half = power_qr_triples(module, shape, k=3, n_iter=8, generator=torch.Generator().manual_seed(1))
    warm = power_qr_triples(module, shape, k=3, n_iter=4, V=half.right)
    torch.testing.assert_close(warm.values, cold.values, rtol=1e-10, atol=0)  # 8 + 4 steps == 12 steps


def test_a_linear_layer_gets_its_matrix_svd():
    torch.manual_seed(4)
    lin = nn.Linear(7, 5).double()
    t = power_qr_triples(lin, (7,), k=5, n_iter=300)
    _, S, Vh = torch.linalg.svd(lin.weight.detach(), full_matrices=False)
    torch.testing.assert_close(t.values, S, rtol=1e-10, atol=0)
    torch.testing.assert_close((t.right * Vh).sum(1).abs(), torch.ones(5, dtype=S.dtype), rtol=0, atol=1e-8)
    assert lin.weight.grad is None  # only the input gets gradients


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=6), "k must be at most the input dimension 7 and the output dimension 5"),
        (dict(k=0), "k must be an int >= 1"),
        (dict(shift=-1.0), "shift must be a finite number >= 0"),
        (dict(shift=float("nan")), "shift must be a finite number >= 0"),
        (dict(V=torch.ones(2, 7)), r"V must have shape \(k, \*input_shape\) = \(1, 7\)"),
        (dict(n_iter=0), "n_iter must be an int >= 1"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        power_qr_triples(nn.Linear(7, 5), (7,), **kwargs)


@pytest.mark.cuda
def test_cuda_stays_on_device():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect").cuda()
    t = power_qr_triples(conv, (3, 6, 6), k=2, n_iter=20, shift=1.0)
    assert t.values.is_cuda and t.right.is_cuda and t.left.is_cuda
