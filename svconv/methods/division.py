"""``division`` (Gouk et al. 2021): warm power iteration, then ``W <- W / max(1, sigma / c)``; BN too.

The power iteration runs on the layer itself (its real stride, padding mode, dilation, groups),
``power_iters`` steps per control step from the vector kept since the previous step. TT layers:
frames orthogonalised first, then the core is estimated and divided. Batch norm:
``Lip(BN) = max_i |gamma_i| / sqrt(var_i + eps)`` and ``gamma <- gamma / max(1, Lip / c)``.
"""

from __future__ import annotations

from svconv.layers import bn_lipschitz, bn_scale_shift
from svconv.methods.base import Layer, SVMethod


class Division(SVMethod):
    """Divide each conv/TT-core/linear weight by ``max(1, sigma/c)``; batch norm gammas likewise.

    ``estimate``: the warm power-iteration value of the layer (``power_iters`` more steps), and the exact
    Lipschitz constant for batch norm (without affine parameters it is reported, not controlled).
    """

    name = "division"

    def handles(self, layer: Layer) -> bool:
        return layer.kind in ("conv", "tt", "linear", "bn")

    def control(self) -> None:
        c = self.clip_to
        for layer in self.layers:
            m = layer.module
            if layer.kind == "bn":
                if m.weight is not None:
                    scale, _ = bn_scale_shift(m)
                    m.weight.div_(scale.abs().max().div(c).clamp_min(1.0))
                continue
            if layer.kind == "tt":
                m.orthogonalize_()
                target, shape = m.core, layer.core_input_shape()
            else:
                target, shape = m, layer.input_shape
            sigma = self.power_norm(layer, target, shape, "v", self.power_iters)
            if sigma > c:
                target.weight.mul_(c / sigma)

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "bn":
            return bn_lipschitz(m)
        if layer.kind == "tt":
            # The whole layer, frames included: no orthogonality assumed in a report.
            return self.power_norm(layer, m, layer.input_shape, "v_est", self.power_iters)
        return self.power_norm(layer, m, layer.input_shape, "v", self.power_iters)
