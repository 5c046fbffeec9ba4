"""``fastclip`` (Boroojeny et al.; seed 003): clip by gradient steps on the layer's own parameters.

Per control step and layer, ``clip_iters`` times: ``power_iters`` warm steps of PowerQR (k = 1: power
iteration on ``M^T M`` by autodiff of the input, no weight gradients) give the top singular triple
``(sigma, u, v)`` of the layer's linear part ``M``, for any padding, stride, dilation or groups; if
``sigma > c``, one gradient step on the weight ``W``:

    G = d <u, M(W) v> / dW,    W <- W - (sigma - c) / ||G||^2 * G.

``M`` is linear in ``W``, so ``<u, M(G) v> = ||G||^2`` and the step sets ``<u, M v>`` to exactly ``c``: it is
the projection onto the half-space ``{W : <u, M(W) v> <= c}``, which holds every ``W`` with
``||M(W)|| <= c``. Repeated, these projections move the spectral norm down to the target while the
kernel's support, padding and stride stay as they are (for a dense matrix one step is exact).

``bn_concat``: a conv (or TT layer) followed by batch norm is controlled as the composition
``BN_eval o conv`` (FastClip-concat), still by steps on the conv's (or TT core's) weight only. TT layers
without it: frames orthogonalised, then the core alone.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from svconv.layers import ConvBN
from svconv.methods.base import Layer, SVMethod, _eval_mode


def top_singular_triple(
    module: Callable[[torch.Tensor], torch.Tensor],
    input_shape: tuple[int, ...],
    n_iter: int,
    v: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sigma, u, v)``: top singular value and unit singular vectors of ``M x = module(x) - module(0)``.

    ``v`` (shape ``input_shape``) warm-starts the ``n_iter`` power steps; ``u`` has the output's shape
    (one sample, no batch dimension).
    """
    from svconv.spectrum import power_iteration
    from svconv.spectrum.linear_map import LinearPart

    sigma, v = power_iteration(module, input_shape, n_iter=n_iter, v=v, generator=generator)
    Mv = LinearPart(module, input_shape).apply(v.unsqueeze(0))[0]
    u = Mv / Mv.norm().clamp_min(torch.finfo(Mv.dtype).tiny)
    return sigma, u, v


class FastClip(SVMethod):
    """Lower every conv/TT-core/linear layer's top singular value to ``clip_to`` by projection steps."""

    name = "fastclip"

    def _operator(self, layer: Layer) -> tuple[nn.Module, tuple[int, ...], nn.Parameter]:
        """(module whose linear part is controlled, its input shape, the weight that is stepped)."""
        m = layer.module
        concat = self.bn_concat and layer.bn is not None and layer.kind in ("conv", "tt")
        if layer.kind == "tt":
            if concat:
                return ConvBN(m, layer.bn), layer.input_shape, m.core.weight
            return m.core, layer.core_input_shape(), m.core.weight
        return (ConvBN(m, layer.bn) if concat else m), layer.input_shape, m.weight

    def control(self) -> None:
        c = self.clip_to
        for layer in self.layers:
            if layer.kind == "tt":
                layer.module.orthogonalize_()
            module, shape, weight = self._operator(layer)
            with _eval_mode(layer.module):
                for _ in range(self.clip_iters):
                    sigma, u, v = top_singular_triple(module, shape, self.power_iters, layer.state.get("v"), self._generator)
                    layer.state["v"] = v
                    if sigma <= c:
                        break
                    with torch.enable_grad():
                        y = module(v.unsqueeze(0))[0]
                        (g,) = torch.autograd.grad((u * y).sum(), weight)
                    weight.sub_(g, alpha=float((sigma - c) / g.pow(2).sum().clamp_min(torch.finfo(g.dtype).tiny)))

    def layer_norm(self, layer: Layer) -> float:
        module, _, _ = self._operator(layer)
        m = layer.module
        if layer.kind == "tt" and not (self.bn_concat and layer.bn is not None):
            module, shape = m, layer.input_shape  # the whole layer, frames included
            return self.power_norm(layer, module, shape, "v_est", self.power_iters)
        return self.power_norm(layer, module, layer.input_shape, "v", self.power_iters)
