"""``rescale``: Delattre et al. 2024's spectral rescaling, per output channel, from Gram iterations of the kernel.

For a conv kernel ``K`` ``(c_out, c_in, k...)`` let ``G`` be its output-side Gram kernel, the
self-correlation ``sum_c K[a, c] * K[b, c]`` over space ``(c_out, c_out, 2k-1...)`` (``K K^T`` of the
convolution on the whole lattice), and ``G_n`` its ``2^(n-1)``-th power, by ``n - 1`` further
self-correlations (Gram iterations, rescaled by the Frobenius norm each time, the scale kept in log
space). With ``t_i = (sum_{j, offsets} |G_n[i, j]|)^(2^-n)``:

- ``t_i`` bounds the spectral norm: ``sigma(K)^(2^n) = ||G^(2^(n-1))|| <= max_i sum_j |G_n[i, j]|``;
- rescaling row ``i`` by ``1 / t_i`` gives a 1-Lipschitz layer: ``G^m <= diag(row sums of G^m)`` (Schur),
  and ``x -> x^(1/m)`` is operator monotone (Loewner-Heinz), so ``G <= diag(t^2)``. ``n = 1`` is AOL's
  rescaling (Prach & Lampert 2022) on the output side.

Both hold for the convolution on the whole lattice, so for every zero-padded, circular or strided
restriction of it (any input size), and through the padding map's norm for reflect/replicate padding
(``docs/design.md``). The control step ``W[i] <- W[i] min(1, c / t_i)`` bounds the layer's norm by ``c``
without an FFT; the bound ``max_i t_i`` is the bench estimator (on the side with fewer channels). The
reference code is lip4conv's ``compute_spectral_rescaling_conv`` (Delattre, Barthelemy, Allauzen 2024,
"Spectral norm of convolutional layers with circular and zero paddings").
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.control import ControlResult
from svconv.control.layer import controlled_part, conv_grid, exact_norm, full_kernel, controlled_kind, relative_change, spatial_size
from svconv.methods.base import Layer, SVMethod
from svconv.methods.registry import register
from svconv.options import TargetOptions
from svconv.methods.flops import prod as _prod
from svconv.spectrum._checks import check_count, check_positive

#: Gram iterations: each doubles the kernel's extent (3 -> 5 -> 9 -> 17); 2 keeps a 640-channel WRN layer in seconds
RESCALE_ITERS = 2


def rescaling_factors(weight: torch.Tensor, n_iter: int = RESCALE_ITERS) -> torch.Tensor:
    """``t`` ``(c_out,)``: Delattre et al. 2024's factor of each output channel of a kernel ``(c_out, c_in, k...)``
    (a linear layer's ``(out, in)`` matrix is a 1x1 kernel); ``max(t)`` bounds the spectral norm and
    ``weight / t[:, None, ...]`` is 1-Lipschitz. ``n_iter >= 1`` Gram iterations."""
    check_count(n_iter, "n_iter")
    if weight.dim() == 2:
        weight = weight[:, :, None, None]
    if weight.dim() not in (4, 5):
        raise ValueError(f"weight must be (out, in), (c_out, c_in, k, k) or (c_out, c_in, k, k, k); got shape {tuple(weight.shape)}")
    conv = F.conv2d if weight.dim() == 4 else F.conv3d
    g = weight.detach()
    log_scale = 0.0
    for _ in range(n_iter):
        s = g.norm().clamp_min(torch.finfo(g.dtype).tiny)
        g = g / s
        log_scale = 2 * (log_scale + math.log(float(s)))
        g = conv(g, g, padding=[kj - 1 for kj in g.shape[2:]])  # self-correlation: the next Gram kernel
    p = 2.0**-n_iter
    return g.abs().sum(dim=tuple(range(1, g.dim()))).pow(p) * math.exp(log_scale * p)


def _operator(module: nn.Module, input_size) -> tuple[nn.Module, float]:
    """(the module whose kernel is rescaled, the norm of its padding map: 1 unless reflect/replicate)."""
    target, kind = controlled_part(module)
    if kind == "linear":
        return target, 1.0
    if target.groups != 1:
        raise ValueError(f"method 'rescale' needs groups=1 (its Gram kernel spans all channels); got groups={target.groups}")
    return target, conv_grid(target, spatial_size(target, input_size))[2]


def rescale_bound(module: nn.Module, input_size: int | Sequence[int] | None = None, n_iter: int = RESCALE_ITERS) -> float:
    """Upper bound on the spectral norm of a conv, TT (through the orthogonalised core) or linear layer,
    from the side with fewer channels."""
    target, pad_norm = _operator(module, input_size)
    w = target.weight.detach()
    if w.shape[1] < w.shape[0]:
        w = w.transpose(0, 1)  # the input-side Gram: same norm, smaller matrices
    return float(rescaling_factors(w, n_iter).max()) * pad_norm


@torch.no_grad()
def spectral_rescale_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    n_iter: int = RESCALE_ITERS,
    check: bool = False,
) -> ControlResult:
    """``W[i] <- W[i] min(1, max_sv / t_i)`` per output channel, in place: the layer's norm is then at most
    ``max_sv`` (TT layers: frames orthogonalised, then the core). ``passes``: 1 when a channel was scaled."""
    max_sv = check_positive(max_sv, "max_sv")
    controlled_kind(module)
    before = full_kernel(module).clone()
    target, pad_norm = _operator(module, input_size)
    t = rescaling_factors(target.weight, n_iter) * pad_norm
    scale = (max_sv / t.clamp_min(torch.finfo(t.dtype).tiny)).clamp_max(1.0)
    target.weight.mul_(scale.view(-1, *([1] * (target.weight.dim() - 1))))
    after = exact_norm(module, input_size) if check else None
    return ControlResult(after, float(max_sv), int(bool((scale < 1).any())), relative_change(before, module))


class SpectralRescale(SVMethod):
    """Rescale every conv/TT-core/linear layer per output channel by Delattre et al. 2024's factors."""

    name = "rescale"
    options = TargetOptions
    order = 45
    summary = "per-channel spectral rescaling from Gram iterations of the kernel, no FFT (Delattre et al. 2024)"
    default_iters = RESCALE_ITERS
    bench_layer = "bound"
    bench_model = "control"
    orthogonalises = True

    def __init__(self, *args, n_iter: int = RESCALE_ITERS, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_iter = n_iter

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        """Self-correlations of the kernel: ``a x b_j x prod(k_j)`` against itself onto ``prod(2 k_j - 1)``
        offsets, ``a`` the smaller channel count, ``b_0`` the larger and ``b_j = a`` after."""
        a, b, ks, total = min(c_out, c_in), max(c_out, c_in), list(kernel), 0.0
        for _ in range(iters):
            nxt = [2 * kj - 1 for kj in ks]
            total += 2.0 * a * a * b * _prod(ks) * _prod(nxt)
            b, ks = a, nxt
        return total

    @classmethod
    def layer_value(cls, module, input_shape, iters, k, generator) -> float:
        return rescale_bound(module, tuple(input_shape[1:]), iters)

    @classmethod
    def bench_method(cls, clip_to: float, iters: int | None) -> "SpectralRescale":
        return cls(clip_to=clip_to, n_iter=iters or RESCALE_ITERS)

    def check_layer(self, layer: Layer) -> None:
        _operator(layer.module.core if layer.kind == "tt" else layer.module, layer.spatial)

    def control(self) -> None:
        for layer in self.layers:
            self.results[layer.name] = spectral_rescale_(layer.module, self.clip_to, layer.spatial, n_iter=self.n_iter)

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "tt":  # bound of the whole layer, ||V|| ||core|| ||U||, with no orthogonality assumed
            nu, nv = m.frame_norms()
            return nu * nv * rescale_bound(m.core, layer.spatial, self.n_iter)
        return rescale_bound(m, layer.spatial, self.n_iter)

register(SpectralRescale)
