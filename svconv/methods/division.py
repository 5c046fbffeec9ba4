"""``division`` (Gouk et al. 2021): warm power iteration, then ``W <- W / max(1, sigma / c)``; BN too.

A control step runs ``svconv.control.divide_`` on every conv, TT and linear layer (``power_iters``
steps from the vector kept since the previous step, on the layer itself: its real stride, padding
mode, dilation, groups; TT layers: frames orthogonalised, then the core) and ``divide_bn_`` on every
batch norm (``Lip(BN) = max_i |gamma_i| / sqrt(var_i + eps)``, exact; ``gamma <- gamma / max(1, Lip / c)``).
Each kind has its own target, as in Gouk et al.'s setup: ``clip_to`` for conv and TT layers,
``clip_to_linear`` for linear layers and ``clip_to_bn`` for batch norm (both ``clip_to`` unless given).
"""

from __future__ import annotations

from typing import Sequence

from svconv.control import divide_, divide_bn_
from svconv.layers import bn_lipschitz
import svconv.methods.flops as F
from svconv.methods.base import Layer, SVMethod, _eval_mode
from svconv.methods.registry import register
from svconv.options import DivisionOptions


class Division(SVMethod):
    """Divide each conv/TT-core/linear weight by ``max(1, sigma/c)``; batch norm gammas likewise; ``c`` per
    layer kind (:meth:`SVMethod.target_for`: ``clip_to``, ``clip_to_linear``, ``clip_to_bn``).

    ``estimate``: the method's own power estimate, ``||M v||`` with the warm unit vector ``v`` the control
    step keeps (after a control step that divided, exactly ``c`` up to rounding: the quantity Gouk et al.
    constrain); before any control step, ``power_iters`` fresh steps. TT layers: the core's value times
    the frame norms (1 for the orthogonalised frames). Batch norm: its exact Lipschitz constant (without
    affine parameters it is reported, not controlled). The layer's true norm can exceed the power
    estimate while the warm vector converges; ``svconv.metrics`` reports true norms.
    """

    name = "division"
    options = DivisionOptions
    order = 20
    summary = "power iteration, then W / max(1, sigma/c) (Gouk et al. 2021); batch norm too"
    default_iters = 1
    bench_layer = "control"
    bench_model = "control"
    orthogonalises = True
    kind_targets = ("linear", "bn")

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.division_flops(c_out, c_in, kernel, size, stride, iters)

    @classmethod
    def layer_control(cls, module, input_shape: Sequence[int], clip_to: float, iters: int | None, state: dict):
        import torch

        return divide_(module, clip_to, tuple(input_shape[1:]), n_iter=iters or 1, state=state,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip

    @classmethod
    def bench_method(cls, clip_to: float, iters: int | None) -> "Division":
        return cls(clip_to=clip_to, power_iters=iters or 1)

    def handles(self, layer: Layer) -> bool:
        return layer.kind in ("conv", "tt", "linear", "bn")

    def _target(self, layer: Layer):
        """(module whose weight is divided, its input shape): the layer, or a TT layer's core."""
        if layer.kind == "tt":
            return layer.module.core, layer.core_input_shape()
        return layer.module, layer.input_shape

    def control(self) -> None:
        for layer in self.layers:
            m, c = layer.module, self.target_for(layer.kind)
            if layer.kind == "bn":
                if m.weight is not None:  # without affine parameters BN is reported, not controlled
                    self.results[layer.name] = divide_bn_(m, c)
                continue
            self.results[layer.name] = divide_(m, c, layer.spatial, n_iter=self.power_iters, state=layer.state, generator=self._generator)

    def layer_norm(self, layer: Layer) -> float:
        from svconv.spectrum.linear_map import LinearPart

        m = layer.module
        if layer.kind == "bn":
            return bn_lipschitz(m)
        target, shape = self._target(layer)
        v = layer.state.get("v")
        if v is None or tuple(v.shape) != tuple(shape):
            sigma = self.power_norm(layer, target, shape, "v", self.power_iters)
        else:
            with _eval_mode(target):
                sigma = float(LinearPart(target, shape).apply(v.unsqueeze(0)).norm())
        if layer.kind == "tt":
            nu, nv = m.frame_norms()
            sigma *= nu * nv
        return sigma

register(Division)
