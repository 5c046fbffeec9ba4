"""Huge (and tiny) but finite kernels: the exact routines and the Gram bound scale first (issue 21, item 10).

Without the power-of-two rescale, float32 entries ~1e19 and float64 entries ~1e154 overflow the Gram
matrices: eigh raised torch._LinAlgError and gram_iteration_bound returned inf. Each routine is checked at
huge scale against the explicit operator of the scaled-down kernel (float64 SVD) times the scale.
"""

from __future__ import annotations

import math

import pytest
import torch

from svconv.spectrum import (
    clip_conv_singular_values,
    clip_to_target,
    conv_singular_values,
    conv_spectral_norm,
    gram_iteration_bound,
)
from tests.test_spectrum import dense_svdvals

# (dtype, scale, relative tolerance): past sqrt(max float) the Gram matrix used to overflow; 2^-110 underflows it
SCALES = [
    (torch.float32, 1e19, 1e-5),
    (torch.float32, 3e30, 1e-5),
    (torch.float32, 2.0**-110, 1e-5),
    (torch.float64, 1e154, 1e-12),
    (torch.float64, 1e300, 1e-12),
    (torch.float64, 2.0**-1000, 1e-12),
]
GEOMETRY = [((3, 2, 3, 3), (6, 6), 2), ((2, 3, 3, 3), (5, 5), 1), ((2, 2, 3, 3, 3), (4, 4, 4), 1)]


def _kernel(shape, dtype, scale):
    g = torch.Generator().manual_seed(sum(shape))
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    return w.to(dtype), (w * scale).to(dtype)


@pytest.mark.parametrize("dtype, scale, rtol", SCALES)
@pytest.mark.parametrize("shape, n, s", GEOMETRY)
def test_singular_values_at_huge_scale_match_the_dense_operator(dtype, scale, rtol, shape, n, s):
    w, big = _kernel(shape, dtype, scale)
    scaled_back = big.double() / scale  # the kernel actually given, scaled down in float64
    truth = dense_svdvals(scaled_back, n, s)
    got = conv_singular_values(big, n, stride=s)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    nz = min(len(truth), len(got))
    torch.testing.assert_close(got[:nz].double() / scale, truth[:nz], rtol=rtol, atol=rtol * float(truth[0]))
    assert math.isclose(float(conv_spectral_norm(big, n, stride=s)) / scale, float(truth[0]), rel_tol=rtol)


@pytest.mark.parametrize("dtype, scale, rtol", SCALES)
def test_gram_bound_at_huge_scale_is_a_finite_bound(dtype, scale, rtol):
    w, big = _kernel((3, 2, 3, 3), dtype, scale)
    truth = float(dense_svdvals(big.double() / scale, (6, 6), 2)[0])
    bound = gram_iteration_bound(big, (6, 6), stride=2)
    assert bool(torch.isfinite(bound))
    assert float(bound) / scale >= truth * (1 - rtol)  # a bound, as a bound
    assert math.isclose(float(bound) / scale, float(gram_iteration_bound(big.double() / scale, (6, 6), stride=2)),
                        rel_tol=10 * rtol)


@pytest.mark.parametrize("dtype, scale, rtol", SCALES)
def test_clipping_at_huge_scale_is_the_scaled_clip(dtype, scale, rtol):
    w, big = _kernel((3, 2, 3, 3), dtype, scale)
    small = big.double() / scale
    clipped = clip_conv_singular_values(big, (6, 6), scale, stride=2, n_iter=3)
    assert clipped.dtype == dtype and bool(torch.isfinite(clipped).all())
    ref = clip_conv_singular_values(small, (6, 6), 1.0, stride=2, n_iter=3)
    torch.testing.assert_close(clipped.double() / scale, ref, rtol=100 * rtol, atol=100 * rtol)
    # and the clipped kernel's true norm, from its own dense operator
    res = clip_to_target(big, (6, 6), scale, stride=2, tol=0.01, guarantee=True)
    truth = float(dense_svdvals(res.weight.double() / scale, (6, 6), 2)[0])
    assert truth <= 1 + 10 * rtol and truth >= 0.99 - 10 * rtol
    assert math.isclose(res.sigma / scale, truth, rel_tol=10 * rtol)
    ref_res = clip_to_target(small, (6, 6), 1.0, stride=2, tol=0.01, guarantee=True)
    assert res.passes == ref_res.passes and math.isclose(res.level / scale, ref_res.level, rel_tol=10 * rtol)


def test_a_norm_beyond_the_dtype_is_refused_with_a_reason():
    w = torch.full((4, 4, 3, 3), 3e38)  # finite float32 entries; the norm (~1e40) is not a float32
    with pytest.raises(ValueError, match=r"the spectral norm of weight exceeds the largest float32 .* float64"):
        conv_spectral_norm(w, (6, 6))
    assert math.isclose(float(conv_spectral_norm(w.double(), (6, 6))), 3e38 * 4 * 9, rel_tol=1e-6)
