"""Skew orthogonal convolution (SOC, Singla & Feizi 2021) and its TT version SOC-TT (Senderovich et al. 2022, Sec. 5.1).

SOC: ``y = sum_{t=0..T} L^t x / t! + b`` with ``L`` the convolution by the skew kernel
``K = W - flip(W)^T`` (``K[o, i, p] = W[o, i, p] - W[i, o, k-1-p]``). With stride 1, an odd kernel and
"same" zero or circular padding, the conv by ``flip(W)^T`` is exactly the adjoint of the conv by ``W``,
so ``L^T = -L`` and ``exp(L)`` is orthogonal. T is ``train_terms`` in training mode and ``eval_terms`` in
eval mode; the series is applied as T convolutions of the activations with ``K`` (no dense operator).

Scaling. ``||L|| <= sqrt(k^2) · ||R||_2`` with ``R`` the kernel reshaped to ``(c, c k^2)`` (each output pixel
is ``R`` applied to the k^2 shifted copies of the input, and the shifts have norm <= 1), for any input size.
``K`` is divided by ``sqrt(k^2) · sigma / max_norm`` where ``sigma`` estimates ``||R||_2`` by power iteration
with a persistent vector (the buffer ``u``, as spectral normalisation and the SOC authors do): one step per
training forward (``power_iters``), none in eval mode, ``init_iters`` at construction. That costs two
matrix-vector products with ``R`` instead of an SVD per forward. ``sigma`` approaches ``||R||_2`` from below,
so ``||L||`` may exceed ``max_norm`` slightly while the vector converges; the certified
:meth:`SOC.lipschitz_bound` never relies on it: it bounds ``||L||`` for the actual kernel in float64 and adds
the Taylor tail ``sum_{t>T} ||L||^t / t!``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.kinds import LayerKind
from svconv.spectrum.bounds import ROUNDING, conv_operator_bound
from svconv.spectrum.power import power_iteration
from svconv.tt.frames import TTFrames, check_channels, parse_ranks

SOC_PADDING_MODES = ("zeros", "circular")
# Above this Taylor tail the cheap kernel bound is refined by the exact conv bound (which costs an SVD per
# frequency); below it the certificate is 1 + (at most) this, tighter than anything it is used for.
TAIL_REFINE = 1e-9


def taylor_tail(b: float, terms: int) -> float:
    """``sum_{t > terms} b^t / t!`` for ``b >= 0``: terms summed until they fall below 1e-17 of the total,
    then the rest bounded by a geometric series (ratio ``b / (t + 1) < 1/2`` there), so an upper bound."""
    if b < 0:
        raise ValueError(f"b must be non-negative; got {b}")
    if b == 0:
        return 0.0
    t = terms + 1
    term = math.exp(t * math.log(b) - math.lgamma(t + 1))
    total = 0.0
    while True:
        total += term
        ratio = b / (t + 1)
        term *= ratio
        t += 1
        if ratio < 0.5 and term <= 1e-17 * total:
            return total + term / (1 - ratio)


def skew_bound(kernel: torch.Tensor) -> torch.Tensor:
    """``sqrt(k1 k2) · ||kernel as (c_out, c_in k1 k2)||_2``: a certified bound on the conv's norm for any input
    size (exact, by SVD; differentiable). :class:`SOC` scales by a power-iteration estimate of it instead."""
    k = kernel.shape[2] * kernel.shape[3]
    return math.sqrt(k) * torch.linalg.matrix_norm(kernel.flatten(1), ord=2)


def _check_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm().clamp_min(torch.finfo(x.dtype).tiny)


def _skew_conv(x: torch.Tensor, kernel: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """``L x``: the stride-1 "same" conv by ``kernel`` (odd size) with zeros or circular padding."""
    p = kernel.shape[-1] // 2
    if padding_mode == "circular" and p:
        return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), kernel)
    return F.conv2d(x, kernel, padding=p)


def _taylor_terms(x: torch.Tensor, kernel: torch.Tensor, terms: int, padding_mode: str) -> list[torch.Tensor]:
    """``[x, L x, L^2 x / 2!, ..., L^T x / T!]``; each 1/t goes on the smaller of the kernel and the activations."""
    on_kernel = kernel.numel() < x.numel()
    zs = [x]
    for t in range(1, terms + 1):
        z = zs[-1]
        zs.append(_skew_conv(z, kernel / t, padding_mode) if on_kernel else _skew_conv(z, kernel, padding_mode) / t)
    return zs


def _kernel_grad(zs: torch.Tensor, grads: torch.Tensor, kernel_shape: torch.Size, padding_mode: str) -> torch.Tensor:
    """``sum_n corr(zs[n], grads[n])``: the gradient of ``sum_n <grads[n], conv(zs[n], K)>`` in ``K``, batched.

    Small maps (few pixels, or 1x1 kernels) go through one im2col matrix product, which is far faster than
    the backends' per-call weight gradient there; larger maps through ``torch.nn.grad.conv2d_weight``.
    """
    c_out, c_in, k, _ = kernel_shape
    p = k // 2
    if padding_mode == "circular" and p:
        zs, pad = F.pad(zs, (p, p, p, p), mode="circular"), 0
    else:
        pad = p
    h, w = grads.shape[-2:]
    if k == 1 or h * w < 16:
        cols = F.unfold(zs, k, padding=pad) if k > 1 else zs.flatten(2)  # (N, c_in k^2, hw)
        g = grads.flatten(2).transpose(0, 1).reshape(c_out, -1)  # (c_out, N hw)
        return (g @ cols.transpose(1, 2).reshape(-1, cols.shape[1])).view(kernel_shape)
    return torch.nn.grad.conv2d_weight(zs, kernel_shape, grads, padding=pad)


def _total(zs: list[torch.Tensor]) -> torch.Tensor:
    y = zs[0].clone()
    for z in zs[1:]:
        y += z
    return y


class _SkewExpSeries(torch.autograd.Function):
    """``sum_{t=0..T} L^t x / t!`` with the backward written out: the adjoint of ``L`` is ``-L`` (the kernel is
    exactly skew), so each step back is one more conv by the kernel, and the kernel's gradient over all T
    terms is one batched correlation instead of T separate ones."""

    @staticmethod
    def forward(ctx, x, kernel, terms, padding_mode):
        zs = _taylor_terms(x, kernel, terms, padding_mode)
        ctx.terms, ctx.padding_mode = terms, padding_mode
        ctx.save_for_backward(kernel, *zs[:-1])
        return _total(zs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        kernel, *zs = ctx.saved_tensors
        terms, mode = ctx.terms, ctx.padding_mode
        a, scaled = dy, []
        for t in range(terms, 0, -1):  # a_T = dy; a_{t-1} = dy + L^T a_t / t = dy - L (a_t / t)
            at = a / t
            scaled.append(at)
            a = dy - _skew_conv(at, kernel, mode)
        dk = None
        if ctx.needs_input_grad[1]:
            dk = _kernel_grad(torch.cat(zs), torch.cat(scaled[::-1]), kernel.shape, mode)
        return a, dk, None, None


def skew_exp(x: torch.Tensor, kernel: torch.Tensor, terms: int, padding_mode: str = "zeros") -> torch.Tensor:
    """``sum_{t=0..terms} L^t x / t!`` for ``L`` the "same" stride-1 conv by an exactly skew ``kernel``
    (``kernel == -kernel.transpose(0, 1).flip(2, 3)``, odd size); ``x`` ``(batch, c, h, w)``, same shape out.
    Differentiable in ``x`` and ``kernel`` (once)."""
    if torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad):
        return _SkewExpSeries.apply(x, kernel, terms, padding_mode)
    return _total(_taylor_terms(x, kernel, terms, padding_mode))


class SOC(nn.Module):
    """Skew orthogonal convolution on ``channels`` channels: orthogonal up to the Taylor truncation.

    Args:
        channels: input and output channels.
        kernel_size: odd int (the adjoint identity needs symmetric "same" padding).
        train_terms, eval_terms: Taylor terms T in training and in eval mode (defaults 5 and 12).
        bias: add a learnt bias (does not change the Lipschitz constant).
        padding_mode: ``'zeros'`` or ``'circular'``.
        max_norm: the value the scaled bound ``sqrt(k^2) ||R||_2`` on ``||L||`` is set to (> 0); smaller
            converges faster, larger is more expressive.
        power_iters: power-iteration steps on ``R`` per training forward (>= 1).
        init_iters: steps at construction and in :meth:`refresh_norm_` (>= 1).

    Input ``(batch, channels, h, w)``, output the same shape.
    """

    layer_kind = LayerKind.SOC
    u: torch.Tensor

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        train_terms: int = 5,
        eval_terms: int = 12,
        bias: bool = True,
        padding_mode: str = "zeros",
        max_norm: float = 1.0,
        power_iters: int = 1,
        init_iters: int = 30,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_channels(channels, "channels")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive int; got {kernel_size!r}")
        if padding_mode not in SOC_PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {SOC_PADDING_MODES}; got {padding_mode!r}")
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm > 0:
            raise ValueError(f"max_norm must be a positive number; got {max_norm!r}")
        self.channels, self.kernel_size = channels, kernel_size
        self.train_terms = _check_int(train_terms, "train_terms", 1)
        self.eval_terms = _check_int(eval_terms, "eval_terms", 1)
        self.power_iters = _check_int(power_iters, "power_iters", 1)
        self.init_iters = _check_int(init_iters, "init_iters", 1)
        self.padding_mode, self.max_norm = padding_mode, float(max_norm)
        self.weight = nn.Parameter(torch.randn(channels, channels, kernel_size, kernel_size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype)) if bias else None
        self.register_buffer("u", _normalize(torch.randn(channels, device=device, dtype=self.weight.dtype)))
        self.refresh_norm_()

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, train_terms={self.train_terms}, "
            f"eval_terms={self.eval_terms}, padding_mode={self.padding_mode!r}, max_norm={self.max_norm}"
        )

    @property
    def terms(self) -> int:
        """The number of Taylor terms the forward pass uses now."""
        return self.train_terms if self.training else self.eval_terms

    def raw_skew_kernel(self) -> torch.Tensor:
        """``W - flip(W)^T`` before scaling, ``(c, c, k, k)`` (differentiable)."""
        w = self.weight
        return w - w.transpose(0, 1).flip(2, 3)

    @torch.no_grad()
    def _power_steps(self, R: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` power-iteration steps ``u <- R R^T u / ||.||`` from the buffer ``u`` (updated in place);
        returns ``v = R^T u / ||R^T u||``. The steps are ``svconv.spectrum.power_iteration`` on the matrix ``R^T``."""
        _, u, image = power_iteration(R.T, (R.shape[0],), n_iter=steps, v=self.u, return_image=True)
        self.u.copy_(u)
        return _normalize(image)

    @torch.no_grad()
    def refresh_norm_(self, steps: int | None = None) -> "SOC":
        """Run ``steps`` (default ``init_iters``) power-iteration steps for the current weights, e.g. after
        editing or loading them without the buffer ``u``. Returns ``self``."""
        steps = self.init_iters if steps is None else _check_int(steps, "steps", 1)
        self._power_steps(self.raw_skew_kernel().flatten(1), steps)
        return self

    def skew_kernel(self) -> torch.Tensor:
        """The kernel of ``L``: ``(W - flip(W)^T) · max_norm / (sqrt(k^2) · sigma)``, differentiable, with
        ``sigma = u^T R v`` the power-iteration estimate of ``||R||_2``. In training mode this advances the
        estimate by ``power_iters`` steps; in eval mode it leaves the buffer alone."""
        k = self.raw_skew_kernel()
        R = k.flatten(1)
        # The norm estimate keeps the weights' precision under autocast (AMP): a half-precision sigma would
        # coarsen the scaling, and torch.dot refuses the mixed dtypes autocast's matmul would produce.
        with torch.autocast(R.device.type, enabled=False):
            if self.training:
                v = self._power_steps(R.detach(), self.power_iters)
            else:
                with torch.no_grad():
                    v = _normalize(R.T @ self.u.to(R.dtype))
            sigma = torch.dot(self.u.to(R.dtype), R @ v)
        scale = self.max_norm / (math.sqrt(self.kernel_size**2) * sigma.clamp_min(torch.finfo(k.dtype).tiny))
        return k * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SOC expects input (batch, {self.channels}, h, w); got {tuple(x.shape)}")
        y = skew_exp(x, self.skew_kernel(), self.terms, self.padding_mode)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    @torch.no_grad()
    def skew_norm_bound(self, input_shape: Sequence[int]) -> float:
        """Certified bound on ``||L||`` for inputs ``(channels, h, w)``, in float64 for the kernel the eval
        forward uses: the conv bound of ``svconv.spectrum.bounds`` (exact for circular padding; for zeros
        padding the norm on an enlarged periodic grid, never above ``sqrt(k^2) ||R||_2``)."""
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[0] != self.channels:
            raise ValueError(f"input_shape must be ({self.channels}, h, w); got {shape}")
        training = self.training
        try:
            self.eval()
            kernel = self.skew_kernel().double()
        finally:
            self.train(training)
        p = self.kernel_size // 2
        return conv_operator_bound(kernel, shape[1:], 1, p, 1, self.padding_mode)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """``1 + sum_{t > T} b^t / t!`` with ``b`` a certified bound on ``||L||`` and T the current :attr:`terms`.

        The truncated series is ``exp(L) - R_T`` with ``exp(L)`` orthogonal and ``||R_T|| <= sum_{t>T} ||L||^t/t!``.
        In training mode the next forward first advances the norm estimate, so the bound is for the eval kernel.
        """
        b = self.cheap_skew_norm_bound()
        if taylor_tail(b, self.terms) > TAIL_REFINE:
            b = min(b, self.skew_norm_bound(input_shape))
        return 1.0 + taylor_tail(b, self.terms)

    @torch.no_grad()
    def cheap_skew_norm_bound(self) -> float:
        """``sqrt(k^2) · ||R||_2`` of the eval kernel as ``(c, c k^2)``, in float64 (a c x c eigenvalue problem):
        a certified bound on ``||L||`` for every input size and padding, far cheaper than the conv bound."""
        training = self.training
        try:
            self.eval()
            r = self.skew_kernel().double().flatten(1)
        finally:
            self.train(training)
        top = float(torch.linalg.eigvalsh(r @ r.T)[-1].clamp_min(0.0))
        return self.kernel_size * math.sqrt(top) * (1 + ROUNDING)


class SOCTT(nn.Module, TTFrames):
    """SOC-TT (Senderovich et al. 2022, Sec. 5.1, laid out as their code does): 1x1 conv ``U`` (channels -> r1),
    then for ``stride`` s > 1 the invertible downsampling (r1 -> r1 s^2 channels, the size divided by s), zero
    channels up to ``m = max(r1 s^2, r2)``, a :class:`SOC` core on m channels, its first r2 channels, and 1x1
    conv ``V`` (r2 -> out_channels, the bias); ``r1 = min(rank, channels)``, ``r2 = min(rank, out_channels)``.
    So it is LipConvNet's strided SOC layer (downsampling, channel padding, SOC, first channels) with a
    rank-r bottleneck before and after; with stride 1 and ``out_channels == channels``, ``U -> SOC(r) -> V``.

    Every step between the frames has norm <= 1 (the SOC up to its Taylor truncation), so orthonormal frames
    (``U U^T = I``, ``V^T V = I``, kept near by ``svconv.tt.orthogonality_loss``) make the layer 1-Lipschitz;
    in the square stride-1 case its nonzero singular values are the core's.

    Args:
        channels: input channels.
        rank: the bottleneck rank r (an int >= 1), capped to the channel counts as above.
        kernel_size, train_terms, eval_terms, padding_mode, max_norm: as :class:`SOC`.
        bias: bias of ``V``.
        out_channels: output channels (default ``channels``).
        stride: the downsampling factor before the core (>= 1; spatial sizes must be divisible by it).

    Input ``(batch, channels, h, w)``, output ``(batch, out_channels, h / stride, w / stride)``.
    """

    layer_kind = LayerKind.SOC

    def __init__(
        self,
        channels: int,
        rank: int,
        kernel_size: int = 3,
        train_terms: int = 5,
        eval_terms: int = 12,
        bias: bool = True,
        padding_mode: str = "zeros",
        max_norm: float = 1.0,
        device=None,
        dtype=None,
        out_channels: int | None = None,
        stride: int = 1,
    ):
        super().__init__()
        check_channels(channels, "channels")
        out_channels = channels if out_channels is None else check_channels(out_channels, "out_channels")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise ValueError(f"rank must be a positive int; got {rank!r}")
        r1, r2 = parse_ranks(rank, channels, out_channels)
        kw = dict(device=device, dtype=dtype)
        self.channels, self.out_channels, self.stride = channels, out_channels, _check_int(stride, "stride", 1)
        self.kernel_size = kernel_size
        self.U = nn.Conv2d(channels, r1, 1, bias=False, **kw)
        m = max(r1 * stride**2, r2)
        self.core = SOC(m, kernel_size, train_terms, eval_terms, bias=False, padding_mode=padding_mode, max_norm=max_norm, **kw)
        self.V = nn.Conv2d(r2, out_channels, 1, bias=bias, **kw)
        with torch.no_grad():
            nn.init.orthogonal_(self.U.weight.view(r1, channels))
            if stride == 1 and out_channels == channels:  # V = U^T: at init the core on the subspace of U's rows
                self.V.weight.copy_(self.U.weight.view(r1, channels).T.reshape(self.V.weight.shape))
            else:
                nn.init.orthogonal_(self.V.weight.view(out_channels, r2))
            if self.V.bias is not None:
                self.V.bias.zero_()

    def extra_repr(self) -> str:
        shape = "" if (self.out_channels, self.stride) == (self.channels, 1) else f", out_channels={self.out_channels}, stride={self.stride}"
        return f"{self.channels}, ranks={self.ranks}{shape}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[2] % s or x.shape[3] % s:
            raise ValueError(f"SOCTT expects input (batch, {self.channels}, h, w) with h, w divisible by {s}; got {tuple(x.shape)}")
        z = self.U(x)
        if s > 1:  # the invertible downsampling (PixelUnshuffle's channel order, as InvertibleDownsampling)
            z = F.pixel_unshuffle(z, s)
        extra = self.core.channels - z.shape[1]
        z = self.core(F.pad(z, (0, 0, 0, 0, 0, extra)) if extra else z)
        return self.V(z[:, : self.V.in_channels])

    def dense_params(self) -> int:
        """Weights of the full SOC this layer stands for: ``max(channels s^2, out_channels)^2 k^2``."""
        return max(self.channels * self.stride**2, self.out_channels) ** 2 * self.core.kernel_size**2

    @torch.no_grad()
    def project_frames_(self) -> "SOCTT":
        """Replace ``U`` and ``V`` by their nearest matrices with orthonormal rows / columns (polar factors).

        Unlike ``TTConv2d.orthogonalize_`` this changes the function (an R factor cannot be folded into a
        skew-symmetric core). Returns ``self``.
        """
        for frame, transpose in ((self.U, False), (self.V, True)):
            m = frame.weight.flatten(1)
            m = m.T if transpose else m
            a, _, bh = torch.linalg.svd(m.to(torch.float64), full_matrices=False)
            polar = a @ bh
            frame.weight.copy_((polar.T if transpose else polar).reshape(frame.weight.shape))
        return self

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """``||V||_2 · SOC bound · ||U||_2`` for inputs ``(channels, h, w)`` (the SOC bound alone for orthonormal
        frames; downsampling, zero channels and dropping channels have norm <= 1)."""
        shape = tuple(int(v) for v in input_shape)
        s = self.stride
        if len(shape) != 3 or shape[0] != self.channels or shape[1] % s or shape[2] % s:
            raise ValueError(f"input_shape must be ({self.channels}, h, w) with h, w divisible by {s}; got {shape}")
        nu, nv = self.frame_norms()
        return nv * self.core.lipschitz_bound((self.core.channels, shape[1] // s, shape[2] // s)) * nu
