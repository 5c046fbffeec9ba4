"""``gram`` (Delattre et al. 2023): rescale every layer by its Gram-iteration upper bound.

``W <- W / max(1, bound / c)``. Convs: ``gram_iteration_bound`` of the periodic operator on the
layer's grid (``conv_geometry``: the input size for circular padding, otherwise the padded input
rounded up to the stride, in which the layer embeds) times the norm of the padding map, so the value
is an honest upper bound on the layer's spectral norm for any padding mode. TT layers: frames
orthogonalised, then the core. Linear layers: Gram iteration on the matrix.
"""

from __future__ import annotations

import torch

from svconv.methods.base import Layer, SVMethod, check_plain_conv, conv_geometry, padding_norm
from svconv.spectrum import gram_iteration_bound

GRAM_ITERS = 6


def gram_bound(module: torch.nn.Module, kind: str, spatial: tuple[int, ...]) -> torch.Tensor:
    """Upper bound (0-d) on the spectral norm of a conv (on inputs of size ``spatial``) or linear layer."""
    if kind == "linear":
        return gram_iteration_bound(module.weight[:, :, None, None], (1, 1), n_iter=GRAM_ITERS)
    grid, stride = conv_geometry(module, spatial)
    return gram_iteration_bound(module.weight, grid, n_iter=GRAM_ITERS, stride=stride) * padding_norm(module, spatial)


class GramRescale(SVMethod):
    """Divide each conv/TT-core/linear weight by ``max(1, bound/c)``, the bound from 6 Gram iterations."""

    name = "gram"

    def check_layer(self, layer: Layer) -> None:
        check_plain_conv(layer, self.name)

    def control(self) -> None:
        for layer in self.layers:
            m = layer.module
            if layer.kind == "tt":
                m.orthogonalize_()
                m = m.core
            bound = gram_bound(m, "linear" if layer.kind == "linear" else "conv", layer.spatial)
            m.weight.div_(bound.div(self.clip_to).clamp_min(1.0))

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "tt":
            # Bound of the whole layer, ||V|| ||core|| ||U||, with no orthogonality assumed.
            nu, nv = m.frame_norms()
            return nu * nv * float(gram_bound(m.core, "conv", layer.spatial))
        return float(gram_bound(m, "linear" if layer.kind == "linear" else "conv", layer.spatial))
