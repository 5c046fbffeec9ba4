"""Clipping a periodic convolution to a target spectral norm, stopping at a tolerance (docs/design.md,
"Clipping to a target").

One clip pass (FFT -> per-frequency clip -> inverse FFT -> restrict to the kernel's support) leaves the
true norm well above the target (about 1.3x for 3x3 kernels), because the restriction adds spectrum
back. :func:`clip_to_target` repeats or re-aims that pass until the true norm of the result is within
``tol`` of the target. Strategies:

- ``"secant"``: clip the ORIGINAL kernel at a level ``t`` and search on ``t``: ``f(t)``, the true norm
  after one pass at level ``t``, is continuous, ``f(0) = 0``, and close to linear. The first step is the
  secant through ``(0, 0)`` (``t <- t c / f(t)``), then secant steps on the last two levels, safeguarded
  by bisection of the bracket ``[lo, hi]`` with ``f(lo) < c < f(hi)``. One decomposition of the original
  transfer matrices serves every level; a check needs eigenvalues only.
- ``"passes"``: plain alternating projections (clip at ``c``, restrict, repeat); each pass decomposes
  the current kernel, and the same decomposition measures it.
- ``"dykstra"``: Dykstra's alternating projections, which carry the part each clip removed into the next
  one; they converge to the nearest kernel (Frobenius) with support ``k`` and norm ``<= c``, so the kernel
  moves least, at the cost of one decomposition and one check per pass.

The ``level`` argument warm-starts the secant search with the level found at the previous control step.

Why ``"secant"`` is the default. Measured on this project's shared 2-core CPU (1 thread, loaded by other
jobs: times are noisy, counts are not), kernels ``randn`` scaled to norm 4, target 1, ``tol = 0.01``,
``max_passes = 20``; ``sigma/c`` is the true norm after, ``change`` is ``||W' - W|| / ||W||``:

=====================  ==========  ======  ======  =======  ======
shape                  strategy    passes  time s  sigma/c  change
=====================  ==========  ======  ======  =======  ======
64->64 @32^2           one pass    1       0.96    1.342    0.594
64->64 @32^2           secant      3       2.26    0.9998   0.695
64->64 @32^2           passes      20      16.6    1.0128   0.668
64->64 @32^2           dykstra     20      22.2    1.0817   0.647
64->64 @32^2 (matmul)  secant      3       19.1    0.9998   0.695
160->160 @32^2         one pass    1       15.9    1.347    0.598
160->160 @32^2         secant      3       45.1    0.9997   0.700
160->160 @32^2         passes      20      282     1.0119   0.673
160->160 @32^2         dykstra     20      464     1.0791   0.651
320->320 @16^2         one pass    1       24.4    1.350    0.595
320->320 @16^2         secant      3       51.0    0.9998   0.697
320->320 @16^2         passes      20      344     1.0122   0.670
160->320 @32^2 s=2     one pass    1       13.9    1.303    0.596
160->320 @32^2 s=2     secant      2       30.1    1.0081   0.685
160->320 @32^2 s=2     passes      20      268     1.0095   0.662
=====================  ==========  ======  ======  =======  ======

The secant search lands within 1 % of the target in 2-3 passes, for 2.1-2.8x the time of one plain pass
(these rows are before the screen of :func:`_secant`, which judges intermediate levels on 1/16 of the
frequencies, and its first step on ``f ~ t^0.95``; with both, 2 passes, and the best of 3 runs of the same
kind: 64->64 @32^2 1.37x, 16->160 @32^2 1.59x, 160->160 @32^2 1.78x one pass. What remains is the one
full check of the returned level: eigvalsh on every frequency, about half a pass at 160 channels);
plain passes need 20 or more (0.95-1.3 % above after 20; 6-9x the secant's time), Dykstra's are 8 % above
after 20. The price is the
kernel's change: 0.70 against 0.67 (passes) and 0.65 (Dykstra, which converges to the least change). Carrying
the level over between control steps (``level=``; 64->64 @32^2, four steps of training drift of norm 0.3 after
the first clip) takes 7 passes in all against 13 cold: 1-2 per step once the level has settled; on the
third control step of the runs above it took 1 pass against 3 (320->320) and 2 against 2 (strided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from svconv.spectrum._checks import (
    as_tuple,
    check_choice,
    check_count,
    check_geometry,
    check_positive,
    check_unit_interval,
)
from svconv.spectrum.clip import GramEig, restrict_transfer
from svconv.spectrum.conv_geometry import dilate_kernel
from svconv.spectrum.exact import gram_singular_values, transfer_matrices
from svconv.spectrum.scaling import power_of_two_scale, scale_by_power_of_two

CLIP_SOLVERS = ("auto", "eigh", "matmul")
CLIP_STRATEGIES = ("secant", "passes", "dykstra")


@dataclass(frozen=True)
class ClipResult:
    """What :func:`clip_to_target` returns.

    ``weight``: the clipped kernel (shape, dtype and device of the input). ``sigma``: spectral norm of its
    periodic operator (exact with the eigh solver; a certified upper bound with the matmul solver).
    ``passes``: clip passes done (FFT -> clip -> inverse FFT -> restrict). ``level``: the clip level used last
    (feed it back as ``level=`` at the next control step). ``rel_change``: ``||W' - W||_F / ||W||_F``.
    """

    weight: torch.Tensor
    sigma: float
    passes: int
    level: float
    rel_change: float


class _Eigh:
    """The eigensolver path: ``GramEig`` for clipping, ``eigvalsh`` for checking."""

    decompose = GramEig

    @staticmethod
    def top_each(dec: GramEig) -> torch.Tensor:
        """``(F,)``: each decomposed matrix's largest singular value."""
        return dec.sigma[..., -1]

    @classmethod
    def top(cls, dec: GramEig) -> float:
        return float(cls.top_each(dec).max())

    @staticmethod
    def per_matrix(P: torch.Tensor) -> torch.Tensor:
        """``(F,)``: each transfer matrix's largest singular value (exact)."""
        return gram_singular_values(P)[..., -1]

    @classmethod
    def norm(cls, P: torch.Tensor) -> float:
        return float(cls.per_matrix(P).max())


def _solver(name: str, device: torch.device):
    """The ``auto`` rule, by measurement. CPU: eigh at every size measured (1 thread, shared 2-core CPU,
    kernels at norm 4, target 1, secant to 1 %): 64->64 @32^2 eigh 0.85 s / matmul 10.5 s, @56^2 eigh
    3.08 s / matmul 102.5 s (both 3 passes). An earlier 48.8 s (eigh) against 25.9 s (matmul) at 56^2 did
    not reproduce: eigh's cost grows with the grid as matmul's does (both are per-frequency batches), so
    no grid size makes matmul the faster one here. CUDA: matmul, where batched eigh loops over the batch
    (``bench.gpu_check`` measures both on a GPU)."""
    if name == "auto":
        name = "matmul" if device.type == "cuda" else "eigh"
    if name == "eigh":
        return _Eigh
    from svconv.spectrum.msign import MatmulSolver

    return MatmulSolver


def _safety(dtype: torch.dtype) -> float:
    """Relative margin of the guarantee's rescale: above the rounding of one norm evaluation."""
    return 64 * torch.finfo(dtype).eps


def clip_to_target(
    weight: torch.Tensor,
    input_size: int | Sequence[int],
    max_sv: float,
    stride: int | Sequence[int] = 1,
    *,
    tol: float = 0.01,
    guarantee: bool = False,
    solver: str = "auto",
    strategy: str = "secant",
    max_passes: int = 20,
    level: float | None = None,
    dilation: int | Sequence[int] = 1,
) -> ClipResult:
    """Clip the periodic convolution with kernel ``weight`` until its spectral norm is within ``tol`` of ``max_sv``.

    Stops as soon as the norm of the result lies in ``[max_sv (1 - tol), max_sv (1 + tol)]``; returns the
    kernel unchanged (0 passes) when its norm is at most ``max_sv (1 + tol)`` to begin with. After
    ``max_passes`` passes without reaching the band it returns the best kernel found.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``, d in {2, 3}, float32 or float64, any device.
        input_size: ``(n_1, ..., n_d)`` or an int; ``k_j <= n_j``.
        max_sv: the target ``c > 0``.
        stride: int or d-tuple dividing ``input_size``.
        tol: relative tolerance in (0, 1).
        guarantee: if True the returned norm is ``<= max_sv``: a final rescale by ``c / sigma`` (slightly
            less, by a margin of 64 eps for rounding) where the search stops above ``c (1 - 64 eps)``.
        solver: ``"eigh"`` (batched eigendecompositions), ``"matmul"`` (Newton-Schulz polar iterations and
            Gram-iteration norms: matmuls only, see ``svconv.spectrum.msign``; the same kernel as eigh to 1e-6
            in float64 in the tests), ``"auto"`` (matmul on CUDA, where batched eigh loops over the batch;
            eigh elsewhere: on this CPU matmul is 12-33x slower, 10.5 s against 0.85 s on 64->64 @32^2 and
            102.5 s against 3.08 s @56^2; the figures are at ``_solver``).
        strategy: one of ``CLIP_STRATEGIES`` (see the module docstring). Default ``"secant"``: 3 passes to
            within 1 % where plain passes are still above after 20; the module docstring has the table.
        max_passes: at most this many clip passes (>= 1).
        level: starting clip level for ``"secant"`` (the ``level`` of the previous result); default ``max_sv``.
        dilation: the conv's dilation: the kernel holds the taps, the operator uses the dilated kernel.

    Returns:
        :class:`ClipResult`.
    """
    d, n, s, m = check_geometry(weight, input_size, stride)
    c = check_positive(max_sv, "max_sv")
    tol = check_unit_interval(tol, "tol")
    check_choice(solver, CLIP_SOLVERS, "solver")
    check_choice(strategy, CLIP_STRATEGIES, "strategy")
    check_count(max_passes, "max_passes")
    if level is not None:
        level = check_positive(level, "level")
    e = power_of_two_scale(weight)
    if e:  # huge (or tiny) entries: clip 2^-e W to 2^-e c (exact scaling; results are homogeneous) and scale back
        r = clip_to_target(scale_by_power_of_two(weight.detach(), -e), input_size, math.ldexp(c, -e), stride, tol=tol,
                           guarantee=guarantee, solver=solver, strategy=strategy, max_passes=max_passes,
                           level=None if level is None else math.ldexp(level, -e), dilation=dilation)
        return ClipResult(scale_by_power_of_two(r.weight, e), math.ldexp(r.sigma, e), r.passes, math.ldexp(r.level, e),
                          r.rel_change)
    w0 = weight.detach()
    kernel, restrict = _geometry(w0, n, s, m, dilation)
    ops = _solver(solver, w0.device)

    run = {"secant": _secant, "passes": _passes, "dykstra": _dykstra}[strategy]
    w, sigma, passes, used = run(ops, w0, kernel, restrict, n, s, c, tol, max_passes, level)
    margin = _safety(w0.dtype)
    if guarantee and sigma > c * (1 - margin):  # within rounding of c counts as above
        factor = c / sigma * (1 - margin)
        w, sigma = w * factor, sigma * factor
    norm0 = torch.linalg.vector_norm(w0)
    rel = float(torch.linalg.vector_norm(w - w0) / norm0) if norm0 > 0 else 0.0
    return ClipResult(w.to(weight.dtype).contiguous(), float(sigma), passes, float(used), rel)


def _geometry(w0: torch.Tensor, n, s, m, dilation) -> tuple[Callable, Callable]:
    """``kernel(w)``: the operator's dense kernel; ``restrict(P)``: spectrum -> taps (the projection onto them)."""
    dil = as_tuple(dilation, w0.dim() - 2, "dilation")
    if all(v == 1 for v in dil):
        return (lambda w: w), (lambda P: restrict_transfer(P, w0.shape, m, s))
    from svconv.spectrum.conv_geometry import dilate_kernel

    dense_shape = dilate_kernel(w0, dil).shape
    if any(kj > nj for kj, nj in zip(dense_shape[2:], n)):
        raise ValueError(f"input_size must be at least the dilated kernel size {tuple(dense_shape[2:])}; got {n}")
    taps = (slice(None), slice(None), *[slice(None, None, v) for v in dil])
    return (lambda w: dilate_kernel(w, dil)), (lambda P: restrict_transfer(P, dense_shape, m, s)[taps])


def _in_band(sigma: float, c: float, tol: float) -> bool:
    return abs(sigma - c) <= tol * c


#: f(t) / t grows slowly as the level falls (1.34 at t = c, 1.36 at 0.75 c for 3x3 kernels, WRN shapes), so
#: f ~ t^0.95 there; the first step solves that instead of the secant through the origin, which undershoots
#: the slope and lands about 1.4 % above the target (one more pass for a 1 % band)
FIRST_EXPONENT = 0.95
#: share of the frequencies an intermediate level is checked on (the top ones of the last full check)
SCREEN_SHARE = 1 / 16


def _secant(ops, w0, kernel, restrict, n, s, c, tol, max_passes, level):
    """The secant search; every level but the returned one is judged on a screen of frequencies.

    A level's true norm is the largest singular value over all frequencies, and the frequencies that hold
    it barely move between nearby levels. Each level is measured first on a screen, the ``SCREEN_SHARE`` of
    the frequencies whose values were highest at the last full check (before any: in the original
    kernel; ``ops.per_matrix`` on a subset of the transfer matrices): with eigh that is a lower
    bound of the norm, so a screen above the band proves the level too high at a sixteenth of a full
    check (with matmul the screen is within the Gram bound's 1e-3 of one). Every other level is measured
    on all frequencies, and only such a full measurement is returned, so ``sigma`` is as exact (eigh) or
    as certified (matmul) as without the screen.
    """
    P0, _ = transfer_matrices(kernel(w0), n, s)
    if level is not None:
        # a control step during training: often nothing has drifted past the band, and eigenvalues alone
        # (0.3-0.5 of a pass on CPU) tell, where the decomposition costs 0.8 of one
        sigma0 = float(ops.per_matrix(P0).max())
        if sigma0 <= c * (1 + tol):
            return w0, sigma0, 0, level
    dec = ops.decompose(P0)
    sigma0 = ops.top(dec)
    if sigma0 <= c * (1 + tol):
        return w0, sigma0, 0, level if level is not None else c
    lo, f_lo, hi, f_hi = 0.0, 0.0, sigma0, sigma0  # f(0) = 0; f(sigma0) = sigma0 (nothing clipped)
    t = level if level is not None and level < sigma0 else c
    prev_t, prev_f = 0.0, 0.0  # the first step is the secant through the origin
    n_screen = max(1, math.ceil(P0.shape[0] * SCREEN_SHARE))
    best, screen = None, torch.topk(ops.top_each(dec), n_screen).indices  # until a full check ranks them
    for passes in range(1, max_passes + 1):
        w = restrict(dec.clip(t))
        P = transfer_matrices(kernel(w), n, s)[0]
        f, full = float(ops.per_matrix(P[screen]).max()), False
        if f <= c * (1 + tol) or passes == max_passes:  # the screen proves only 'too high'
            per = ops.per_matrix(P)
            f, full = float(per.max()), True
            screen = torch.topk(per, min(n_screen, per.numel())).indices
        if full and (best is None or abs(f - c) < abs(best[1] - c)):
            best = (w, f, passes, t)
        if full and _in_band(f, c, tol):
            break
        if f > c:
            hi, f_hi = t, f
        else:
            lo, f_lo = t, f
        if prev_t == 0.0 and f > 0:  # the first step: f(t) ~ t^FIRST_EXPONENT near the target (measured)
            nxt = t * (c / f) ** (1 / FIRST_EXPONENT)
        else:
            nxt = t + (c - f) * (t - prev_t) / (f - prev_f) if f != prev_f else math.nan
        prev_t, prev_f = t, f
        t = nxt if lo < nxt < hi else 0.5 * (lo + hi)
    w, f, _, t = best
    return w, f, passes, t


def _passes(ops, w0, kernel, restrict, n, s, c, tol, max_passes, level):
    w, passes = w0, 0
    while True:
        dec = ops.decompose(transfer_matrices(kernel(w), n, s)[0])
        sigma = ops.top(dec)
        if sigma <= c * (1 + tol) or passes == max_passes:
            return w, sigma, passes, c
        w = restrict(dec.clip(c))
        passes += 1


def _dykstra(ops, w0, kernel, restrict, n, s, c, tol, max_passes, level):
    # Dykstra for a subspace (the support) and a convex set (the norm ball): only the ball's step carries
    # a correction q, kept in the frequency domain (the half-spectrum of a real n-grid kernel).
    P = transfer_matrices(kernel(w0), n, s)[0]
    dec = ops.decompose(P)
    sigma = ops.top(dec)
    w, passes = w0, 0
    while sigma > c * (1 + tol) and passes < max_passes:
        clipped = dec.clip(c)
        q = P - clipped
        w = restrict(clipped)
        passes += 1
        Pw = transfer_matrices(kernel(w), n, s)[0]
        sigma = ops.norm(Pw)
        if sigma <= c * (1 + tol) or passes == max_passes:
            break
        P = Pw + q
        dec = ops.decompose(P)
    return w, sigma, passes, c
