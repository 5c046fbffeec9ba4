"""TT (Tucker-2) convolutions (Senderovich et al. 2022, eq. 4-7): ``W[o, i, p] = sum_{a,b} V[o, b] C[b, a, p] U[a, i]``.

A 1x1 conv ``U`` (c_in -> r1, no bias), a k^d conv ``core`` (r1 -> r2, carrying stride, padding, padding
mode and dilation, no bias), a 1x1 conv ``V`` (r2 -> c_out, the bias). With orthonormal frames
(``U U^T = I``, ``V^T V = I``) the nonzero singular values of the layer are those of the core (Theorem 3.2),
so exact spectra and clipping cost ``r^3`` instead of ``c^3`` per frequency. ``orthogonalize_`` gets
there without changing the layer's function (Lemma 3.2).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.spectrum import ClipResult, clip_conv_singular_values, clip_to_target, conv_singular_values, conv_spectral_norm
from svconv.spectrum._checks import check_count, check_positive
from svconv.tt.frames import TTFrames, check_channels, parse_ranks


def _qr_positive(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin QR with ``diag(R) >= 0``: unique, so an already orthonormal ``a`` gives ``Q = a``, ``R = I``."""
    q, r = torch.linalg.qr(a)
    sign = torch.sign(torch.diagonal(r))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return q * sign, r * sign.unsqueeze(-1)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class _TTConvNd(nn.Module, TTFrames):
    _d: int
    _conv: type

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        rank: int | tuple[int, int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        check_channels(in_channels, "in_channels")
        check_channels(out_channels, "out_channels")
        r1, r2 = parse_ranks(rank, in_channels, out_channels)
        kw = dict(device=device, dtype=dtype)
        self.U = self._conv(in_channels, r1, 1, bias=False, **kw)
        self.core = self._conv(
            r1, r2, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False,
            padding_mode=padding_mode, **kw,
        )
        self.V = self._conv(r2, out_channels, 1, bias=bias, **kw)
        with torch.no_grad():  # orthonormal frames: the layer starts with the core's spectrum
            nn.init.orthogonal_(self.U.weight.view(r1, in_channels))
            nn.init.orthogonal_(self.V.weight.view(out_channels, r2))

    # -- geometry -------------------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return self.U.in_channels

    @property
    def out_channels(self) -> int:
        return self.V.out_channels

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.core.kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        return self.core.stride

    @property
    def padding(self):
        return self.core.padding

    @property
    def dilation(self) -> tuple[int, ...]:
        return self.core.dilation

    @property
    def padding_mode(self) -> str:
        return self.core.padding_mode

    @property
    def bias(self) -> torch.Tensor | None:
        return self.V.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, ranks={self.ranks}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.V(self.core(self.U(x)))

    # -- the dense equivalent -------------------------------------------------------------------
    def full_weight(self) -> torch.Tensor:
        """The equivalent dense kernel ``(c_out, c_in, k_1..k_d)`` (with the graph). The conv with it and the
        core's stride/padding/dilation/padding mode and ``V``'s bias computes the same function (a 1x1 map
        commutes with every padding mode)."""
        U, V = self.frame_matrices()
        C = self.core.weight
        W = torch.einsum("ob,bak,ai->oik", V, C.flatten(2), U)
        return W.reshape(self.out_channels, self.in_channels, *C.shape[2:])

    def to_conv(self) -> nn.Module:
        """A plain ``nn.Conv2d``/``nn.Conv3d`` computing the same function."""
        c = self.core
        w = self.U.weight
        conv = self._conv(
            self.in_channels, self.out_channels, c.kernel_size, stride=c.stride, padding=c.padding,
            dilation=c.dilation, bias=self.bias is not None, padding_mode=c.padding_mode,
            device=w.device, dtype=w.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(self.full_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def dense_params(self) -> int:
        k = 1
        for kj in self.kernel_size:
            k *= kj
        return self.in_channels * self.out_channels * k

    # -- Lemma 3.2 ------------------------------------------------------------------------------
    @torch.no_grad()
    def orthogonalize_(self) -> "_TTConvNd":
        """Make ``U`` row-orthonormal and ``V`` column-orthonormal, folding the R factors into the core.

        Thin QR ``U^T = Q1 R1``, ``V = Q3 R3``; ``U <- Q1^T``, ``V <- Q3``, ``C[:, :, p] <- R3 C[:, :, p] R1^T``.
        The layer's function is unchanged to rounding; already orthonormal frames are left as they are.
        Parameters are updated in place (optimiser state keeps pointing at them). Returns ``self``.
        """
        U, V = self.frame_matrices()
        work = _work_dtype(U.dtype)
        q1, r1 = _qr_positive(U.T.to(work))
        q3, r3 = _qr_positive(V.to(work))
        C = self.core.weight
        Cn = torch.einsum("bc,cak,da->bdk", r3, C.flatten(2).to(work), r1)
        self.U.weight.copy_(q1.T.reshape(self.U.weight.shape))
        self.V.weight.copy_(q3.reshape(self.V.weight.shape))
        C.copy_(Cn.reshape(C.shape))
        return self

    # -- spectra through the core (Theorem 3.2) -------------------------------------------------
    def _core_kernel(self) -> torch.Tensor:
        from svconv.spectrum.conv_geometry import dilate_kernel

        return dilate_kernel(self.core.weight, self.core.dilation)

    def singular_values(self, input_size: int | Sequence[int]) -> torch.Tensor:
        """All singular values of the core's periodic operator on ``input_size`` with the layer's stride, descending.

        With orthonormal frames (call :meth:`orthogonalize_` first) these are the nonzero singular values of
        the whole layer's periodic operator, padded with zeros; otherwise they are only the core's.
        ``input_size`` is the spatial size of the layer's input (the core's input has the same one).
        Shape ``(prod(n/s) · min(r2, r1 · prod(s)),)``.
        """
        return conv_singular_values(self._core_kernel(), input_size, self.core.stride)

    def spectral_norm(self, input_size: int | Sequence[int]) -> torch.Tensor:
        """Largest singular value of the core's periodic operator (the layer's, with orthonormal frames); 0-d."""
        return conv_spectral_norm(self._core_kernel(), input_size, self.core.stride)

    @torch.no_grad()
    def clip_(self, max_sv: float, input_size: int | Sequence[int], n_iter: int = 1) -> "_TTConvNd":
        """Clip the singular values of the layer's periodic operator to ``max_sv`` by clipping the core only.

        Orthogonalises the frames first (function unchanged), then ``n_iter`` clip-then-restrict passes on
        the core (``clip_conv_singular_values`` with the layer's stride; with dilation the restriction is to
        the dilated taps). Check the result with :meth:`spectral_norm`. Returns ``self``.
        """
        check_positive(max_sv, "max_sv")
        check_count(n_iter, "n_iter")
        self.orthogonalize_()
        w = self.core.weight
        dil = self.core.dilation
        if all(v == 1 for v in dil):
            new = clip_conv_singular_values(w, input_size, max_sv, self.core.stride, n_iter=n_iter)
        else:
            from svconv.spectrum.conv_geometry import dilate_kernel

            taps = (slice(None), slice(None), *[slice(None, None, v) for v in dil])
            new = w
            for _ in range(n_iter):
                new = clip_conv_singular_values(dilate_kernel(new, dil), input_size, max_sv, self.core.stride)[taps]
        w.copy_(new)
        return self

    @torch.no_grad()
    def clip_to_target(
        self,
        max_sv: float,
        input_size: int | Sequence[int],
        *,
        tol: float = 0.01,
        guarantee: bool = False,
        solver: str = "auto",
        strategy: str = "secant",
        max_passes: int = 20,
        level: float | None = None,
    ) -> ClipResult:
        """Clip the layer's periodic operator to within ``tol`` of ``max_sv`` through the core (Theorem 3.2).

        Orthogonalises the frames (function unchanged), runs ``svconv.spectrum.clip_to_target`` on the core
        with the layer's stride and dilation, and writes the core back in place. The result's ``sigma`` is the
        layer's norm (the core's, frames orthonormal); ``weight`` is the new core kernel. Arguments as there.
        """
        self.orthogonalize_()
        w = self.core.weight
        res = clip_to_target(
            w, input_size, max_sv, self.core.stride, tol=tol, guarantee=guarantee, solver=solver,
            strategy=strategy, max_passes=max_passes, level=level, dilation=self.core.dilation,
        )
        w.copy_(res.weight)
        return res

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """Certified upper bound on the layer's Lipschitz constant for one input ``(c_in, *spatial)``.

        ``||V||_2 · bound(core) · ||U||_2``: the core's bound is exact for circular padding (the spectral norm
        of its periodic operator) and the norm on a large enough circular embedding otherwise (see
        ``svconv.spectrum.bounds``). With orthonormal frames both frame norms are 1 and the value is the
        core's, i.e. exact through the core (Theorem 3.2).
        """
        from svconv.spectrum.bounds import conv_operator_bound

        shape = tuple(int(v) for v in input_shape)
        if len(shape) != self._d + 1 or shape[0] != self.in_channels:
            raise ValueError(f"input_shape must be ({self.in_channels}, n_1, ..., n_{self._d}); got {shape}")
        nu, nv = self.frame_norms()
        c = self.core
        core = conv_operator_bound(c.weight, shape[1:], c.stride, c.padding, c.dilation, c.padding_mode)
        return nv * core * nu


class TTConv2d(_TTConvNd):
    """TT-compressed 2-D convolution ``V ∘ core ∘ U``; arguments as ``nn.Conv2d`` plus ``rank`` (int or ``(r1, r2)``,
    clamped to ``(in_channels, out_channels)``); ``groups`` is not supported. Input ``(batch, c_in, h, w)``."""

    _d = 2
    _conv = nn.Conv2d


class TTConv3d(_TTConvNd):
    """TT-compressed 3-D convolution; as :class:`TTConv2d` with ``nn.Conv3d`` and inputs ``(batch, c_in, d, h, w)``."""

    _d = 3
    _conv = nn.Conv3d
