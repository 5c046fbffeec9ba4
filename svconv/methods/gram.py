"""``gram`` (Delattre et al. 2023): rescale every layer by its Gram-iteration upper bound.

A control step runs ``svconv.control.gram_rescale_`` on every conv, TT and linear layer:
``W <- W / max(1, bound / c)``, the bound from 6 Gram iterations on the periodic operator of the
layer's grid times the norm of the padding map (an honest bound for any padding mode). TT layers:
frames orthogonalised, then the core. As a bench estimator (layer scope) it is that bound.
"""

from __future__ import annotations

from typing import Sequence

from svconv.control.gram import GRAM_ITERS, gram_bound, gram_rescale_
import svconv.methods.flops as F
from svconv.methods.base import Layer, SVMethod, check_plain_conv
from svconv.methods.registry import register
from svconv.options import TargetOptions


class GramRescale(SVMethod):
    """Divide each conv/TT-core/linear weight by ``max(1, bound/c)``, the bound from 6 Gram iterations."""

    name = "gram"
    options = TargetOptions
    order = 40
    summary = "rescale by the Gram-iteration upper bound (Delattre et al. 2023)"
    default_iters = GRAM_ITERS
    min_iters = 0
    fixed_iters = GRAM_ITERS  # a training control step always runs this many
    bench_layer = "bound"
    bench_model = "control"
    flops_on_grid = True
    orthogonalises = True

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.gram_flops(c_out, c_in, size, stride, iters)

    @classmethod
    def layer_value(cls, module, input_shape: Sequence[int], iters, k, generator):
        if hasattr(module, "core"):
            module.orthogonalize_()
            module = module.core
        return gram_bound(module, tuple(input_shape[1:]), iters)

    def check_layer(self, layer: Layer) -> None:
        check_plain_conv(layer, self.name)

    def control(self) -> None:
        for layer in self.layers:
            self.results[layer.name] = gram_rescale_(layer.module, self.clip_to, layer.spatial)

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "tt":
            # Bound of the whole layer, ||V|| ||core|| ||U||, with no orthogonality assumed.
            nu, nv = m.frame_norms()
            return nu * nv * float(gram_bound(m.core, layer.spatial))
        return float(gram_bound(m, layer.spatial))

register(GramRescale)
