"""clip_to_target against the explicit operator: the stop band, the guarantee, strides, 3-D, dtypes, solvers."""

from __future__ import annotations

import functools

import pytest
import torch

from svconv.spectrum import (
    CLIP_SOLVERS,
    CLIP_STRATEGIES,
    clip_conv_singular_values,
    clip_to_target,
    conv_spectral_norm,
    dense_operator,
    periodic_conv,
)


def dense_norm(weight: torch.Tensor, input_size, stride) -> float:
    """Spectral norm of the periodic operator, from its dense float64 matrix."""
    w = weight.detach().double().cpu()
    op = functools.partial(periodic_conv, weight=w, stride=stride)
    A = dense_operator(op, (w.shape[1], *input_size), dtype=torch.float64)
    return torch.linalg.matrix_norm(A, ord=2).item()


# (c_out, c_in, kernel, input_size, stride): square, wide and tall transfer matrices, strides, 3-D
SHAPES = [
    (4, 4, (3, 3), (8, 8), 1),
    (3, 5, (3, 3), (6, 8), 2),
    (6, 2, (3, 2), (6, 4), (3, 2)),
    (3, 2, (3, 3, 3), (4, 4, 4), 1),
    (2, 3, (2, 3, 3), (4, 6, 6), 2),
]


def _kernel(c_out, c_in, k, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.randn(c_out, c_in, *k, dtype=dtype)


@pytest.mark.parametrize("strategy", CLIP_STRATEGIES)
@pytest.mark.parametrize("c_out,c_in,k,n,s", SHAPES)
def test_result_norm_is_in_the_band_and_true(c_out, c_in, k, n, s, strategy):
    w = _kernel(c_out, c_in, k, 11)
    c = 0.4 * dense_norm(w, n, s)
    tol = 0.02
    res = clip_to_target(w, n, c, s, tol=tol, strategy=strategy, solver="eigh", max_passes=500)
    truth = dense_norm(res.weight, n, s)
    assert res.sigma == pytest.approx(truth, rel=1e-9)
    assert abs(truth - c) <= tol * c
    assert res.passes >= 1
    diff = (res.weight - w).norm() / w.norm()
    assert res.rel_change == pytest.approx(diff.item(), rel=1e-9)


def test_secant_reaches_the_band_in_fewer_passes_than_plain_passes():
    w = _kernel(8, 8, (3, 3), 12)
    c = 0.25 * conv_spectral_norm(w, 8).item()
    secant = clip_to_target(w, 8, c, tol=0.005, strategy="secant", solver="eigh", max_passes=60)
    plain = clip_to_target(w, 8, c, tol=0.005, strategy="passes", solver="eigh", max_passes=60)
    assert abs(secant.sigma - c) <= 0.005 * c and plain.sigma <= 1.005 * c
    assert secant.passes < plain.passes
    assert secant.level < c  # the search clips the original below the target to land on it


def test_stops_as_soon_as_the_band_is_reached():
    w = _kernel(6, 6, (3, 3), 13)
    n, c, tol = 8, 0.3 * conv_spectral_norm(w, 8).item(), 0.01
    res = clip_to_target(w, n, c, tol=tol, strategy="passes", solver="eigh", max_passes=60)
    one_less = clip_conv_singular_values(w, n, c, n_iter=res.passes - 1)
    assert conv_spectral_norm(one_less, n).item() > c * (1 + tol)  # the pass before was still outside
    torch.testing.assert_close(res.weight, clip_conv_singular_values(w, n, c, n_iter=res.passes))


def test_max_passes_bounds_the_work_and_returns_the_best():
    w = _kernel(6, 6, (3, 3), 14)
    c = 0.3 * conv_spectral_norm(w, 8).item()
    res = clip_to_target(w, 8, c, tol=1e-4, strategy="passes", solver="eigh", max_passes=2)
    assert res.passes == 2
    assert res.sigma == pytest.approx(dense_norm(res.weight, (8, 8), 1), rel=1e-9)
    assert res.sigma > c * (1 + 1e-4)


@pytest.mark.parametrize("strategy", CLIP_STRATEGIES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c_out,c_in,k,n,s", SHAPES[1:4])
def test_guarantee_holds(c_out, c_in, k, n, s, dtype, strategy):
    w = _kernel(c_out, c_in, k, 15, dtype)
    c = 0.5 * dense_norm(w, n, s)
    res = clip_to_target(w, n, c, s, tol=0.05, guarantee=True, strategy=strategy, solver="eigh", max_passes=3)
    assert res.sigma <= c
    assert dense_norm(res.weight, n, s) <= c * (1 + 1e-12)
    assert res.weight.dtype == dtype and res.weight.shape == w.shape


def test_already_below_the_target_is_left_alone():
    w = _kernel(4, 3, (3, 3), 16, torch.float32)
    sigma = conv_spectral_norm(w, 8).item()
    for c in (2 * sigma, sigma * 0.995):  # below, and above but inside the band
        res = clip_to_target(w, 8, c, tol=0.01, level=0.3)
        assert res.passes == 0 and res.rel_change == 0.0
        assert torch.equal(res.weight, w)
        assert res.sigma == pytest.approx(sigma, rel=1e-5)
        assert res.level == 0.3  # a carried-over level survives a step that needed nothing


def test_level_warm_start_needs_fewer_passes():
    w = _kernel(8, 8, (3, 3), 17)
    c = 0.25 * conv_spectral_norm(w, 8).item()
    cold = clip_to_target(w, 8, c, tol=0.002, solver="eigh")
    warm = clip_to_target(w * 1.01, 8, c, tol=0.002, solver="eigh", level=cold.level)  # the next control step
    assert abs(warm.sigma - c) <= 0.002 * c
    assert warm.passes < cold.passes


def test_dykstra_moves_the_kernel_least():
    w = _kernel(4, 4, (3, 3), 18)
    c = 0.25 * conv_spectral_norm(w, 8).item()
    res = {
        st: clip_to_target(w, 8, c, tol=0.01, strategy=st, solver="eigh", max_passes=400) for st in CLIP_STRATEGIES
    }
    assert all(abs(r.sigma - c) <= c * 0.01 for r in res.values())
    assert res["dykstra"].rel_change < res["passes"].rel_change < res["secant"].rel_change


def test_dilated_taps_are_clipped_through_the_dilated_operator():
    from svconv.spectrum.conv_geometry import dilate_kernel

    w = _kernel(4, 4, (3, 3), 19)
    n, c = (10, 10), 0.4 * conv_spectral_norm(dilate_kernel(w, 2), 10).item()
    res = clip_to_target(w, n, c, tol=0.01, dilation=2, solver="eigh")
    assert res.weight.shape == w.shape
    assert abs(dense_norm(dilate_kernel(res.weight, 2), n, 1) - c) <= 0.01 * c


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(solver="svd"), "solver must be one of 'auto', 'eigh', 'matmul'"),
        (dict(strategy="newton"), "strategy must be one of"),
        (dict(tol=0.0), r"tol must be in the open interval \(0, 1\)"),
        (dict(tol=1.0), r"tol must be in the open interval \(0, 1\)"),
        (dict(max_passes=0), "max_passes must be an int >= 1"),
        (dict(level=-1.0), "level must be a positive number"),
        (dict(max_sv=0.0), "max_sv must be a positive number"),
        (dict(stride=3), "stride must divide"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = dict(weight=torch.randn(2, 2, 3, 3), input_size=4, max_sv=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        clip_to_target(**args)


def test_contract_constants():
    assert CLIP_SOLVERS == ("auto", "eigh", "matmul")
    assert CLIP_STRATEGIES[0] == "secant"


@pytest.mark.parametrize("d,stride,guarantee", [(2, 1, False), (2, 2, True), (3, 2, False)])
def test_tt_layer_is_clipped_through_its_core(d, stride, guarantee):
    from svconv.tt import TTConv2d, TTConv3d

    torch.manual_seed(20)
    cls = TTConv2d if d == 2 else TTConv3d
    layer = cls(5, 6, 3, (4, 3), stride=stride, padding=1, padding_mode="circular", dtype=torch.float64)
    with torch.no_grad():  # frames far from orthonormal: the method must orthogonalise first
        layer.U.weight.normal_()
        layer.V.weight.normal_()
    n = (4,) * d
    x = torch.randn(2, 5, *n, dtype=torch.float64)
    y = layer(x).detach()
    full = layer.full_weight().detach()  # the layer's dense kernel (bias excluded: the operator is linear)
    c = 0.4 * dense_norm(full, n, stride)
    res = layer.clip_to_target(c, n, tol=0.02, guarantee=guarantee, solver="eigh")
    truth = dense_norm(layer.full_weight().detach(), n, stride)
    assert res.sigma == pytest.approx(truth, rel=1e-9)
    assert abs(truth - c) <= 0.02 * c and (truth <= c or not guarantee)
    assert torch.equal(layer.core.weight.detach(), res.weight)
    assert not torch.allclose(layer(x), y)  # the layer changed


# -- the matmul solver ---------------------------------------------------------------------------


def _complex_batch(a, b, singular_values, dtype, seed):
    """``(len, a, b)`` complex matrices with the given singular values (one row per matrix) and random frames."""
    g = torch.Generator().manual_seed(seed)
    k = min(a, b)
    U = torch.linalg.qr(torch.randn(len(singular_values), a, k, dtype=dtype, generator=g))[0]
    V = torch.linalg.qr(torch.randn(len(singular_values), b, k, dtype=dtype, generator=g))[0]
    return (U * singular_values.to(dtype).unsqueeze(-2)) @ V.mH, U, V


@pytest.mark.parametrize("a,b", [(12, 12), (6, 15), (15, 6)])
def test_msign_and_the_polar_hard_cap_identity(a, b):
    from svconv.spectrum.clip import clip_transfer_matrices
    from svconv.spectrum.msign import msign

    k = min(a, b)
    sv = torch.linspace(0.1, 3.0, k, dtype=torch.float64).repeat(4, 1)
    X, U, V = _complex_batch(a, b, sv, torch.complex128, 21)
    O = msign(X)
    torch.testing.assert_close(O, U @ V.mH, rtol=0, atol=1e-12)
    # docs/design.md: U min(S, c) V^H = (X + c O - msign(c O - X) O^H (c O - X)) / 2, exact O
    c = 1.3
    Y = c * O - X
    capped = 0.5 * (X + c * O - msign(Y) @ O.mH @ Y)
    torch.testing.assert_close(capped, clip_transfer_matrices(X, c), rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype,atol", [(torch.complex128, 1e-6), (torch.complex64, 2e-4)])
@pytest.mark.parametrize("a,b", [(16, 16), (8, 20), (20, 8)])
def test_hard_cap_matches_the_eigensolver_with_tiny_and_near_level_values(a, b, dtype, atol):
    from svconv.spectrum.clip import clip_transfer_matrices
    from svconv.spectrum.msign import hard_cap

    k = min(a, b)
    sv = torch.logspace(-7, 0.7, k, dtype=torch.float64).repeat(6, 1)  # down to 2e-8 sigma_max
    sv[:, -4:-1] = torch.tensor([1.0, 1.0 + 1e-6, 1.0 - 1e-4])  # on and next to the level
    X, _, _ = _complex_batch(a, b, sv, dtype, 22)
    ours = hard_cap(X, 1.0)
    truth = clip_transfer_matrices(X.to(torch.complex128), 1.0)
    torch.testing.assert_close(ours.to(torch.complex128), truth, rtol=0, atol=atol * sv.max().item())
    assert torch.linalg.svdvals(ours.to(torch.complex128)).max() <= 1.0 + 2 * atol


@pytest.mark.parametrize("strategy", ["secant", "passes"])
@pytest.mark.parametrize("c_out,c_in,k,n,s", SHAPES)
def test_matmul_solver_matches_eigh(c_out, c_in, k, n, s, strategy):
    w = _kernel(c_out, c_in, k, 23)
    c = 0.4 * dense_norm(w, n, s)
    eig = clip_to_target(w, n, c, s, tol=0.02, strategy=strategy, solver="eigh", max_passes=60)
    mat = clip_to_target(w, n, c, s, tol=0.02, strategy=strategy, solver="matmul", max_passes=60)
    assert mat.passes == eig.passes
    torch.testing.assert_close(mat.weight, eig.weight, rtol=0, atol=1e-6 * w.abs().max().item())
    truth = dense_norm(mat.weight, n, s)
    assert truth * (1 - 1e-12) <= mat.sigma <= truth * (1 + 1e-3)  # a certified bound (to rounding), tight to GRAM_REL


@pytest.mark.parametrize("strategy", CLIP_STRATEGIES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c_out,c_in,k,n,s", [SHAPES[1], SHAPES[4]])
def test_matmul_guarantee_holds(c_out, c_in, k, n, s, dtype, strategy):
    w = _kernel(c_out, c_in, k, 24, dtype)
    c = 0.5 * dense_norm(w, n, s)
    res = clip_to_target(w, n, c, s, tol=0.05, guarantee=True, strategy=strategy, solver="matmul", max_passes=3)
    assert res.sigma <= c
    assert dense_norm(res.weight, n, s) <= c * (1 + 1e-6)
    assert res.weight.dtype == dtype


@pytest.mark.cuda
def test_cuda_stays_on_device_and_matches_cpu():
    w = _kernel(6, 4, (3, 3), 25)
    c = 0.4 * conv_spectral_norm(w, 8, 2).item()
    cpu = clip_to_target(w, 8, c, 2, solver="eigh")
    for solver in CLIP_SOLVERS:
        res = clip_to_target(w.cuda(), 8, c, 2, solver=solver)
        assert res.weight.is_cuda
        torch.testing.assert_close(res.weight.cpu(), cpu.weight, rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", ["eigh", "matmul"])
@pytest.mark.parametrize("n,s", [((16, 16), 1), ((16, 12), 2)])
def test_secant_with_screened_levels_returns_a_fully_checked_norm(n, s, solver):
    # a 16x16 grid: the screen is 1/16 of 136 (or 40) frequencies, and a tight band makes the search try
    # several levels, most of them judged on the screen alone; the returned sigma must still be the full one
    w = _kernel(5, 4, (3, 3), 21)
    c, tol = 0.3 * dense_norm(w, n, s), 0.002
    res = clip_to_target(w, n, c, s, tol=tol, strategy="secant", solver=solver, max_passes=40)
    truth = dense_norm(res.weight, n, s)
    assert res.passes >= 2
    if solver == "eigh":
        assert res.sigma == pytest.approx(truth, rel=1e-9)  # exact
    else:
        assert truth * (1 - 1e-12) <= res.sigma <= truth * (1 + 1e-3)  # a certified bound (to rounding)
    assert abs(truth - c) <= tol * c * (1 + 1e-3)


@pytest.mark.parametrize("solver", ["eigh", "matmul"])
def test_a_warm_step_on_a_kernel_inside_the_band_only_measures_it(solver):
    w = _kernel(4, 4, (3, 3), 31)
    c = dense_norm(w, (8, 8), 1) * 1.005  # already within 1 %
    res = clip_to_target(w, 8, c, tol=0.01, solver=solver, level=0.7 * c)
    assert res.passes == 0 and res.level == pytest.approx(0.7 * c) and torch.equal(res.weight, w)
    assert res.sigma == pytest.approx(c / 1.005, rel=1e-9 if solver == "eigh" else 1e-3)
