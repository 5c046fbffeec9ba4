"""``clip``: exact clipping of every singular value (Sedghi et al. 2019; strided: seed 000, Sec. 5.2).

Conv layers: ``clip_conv_singular_values`` on the periodic operator of the layer's grid and stride
(``conv_geometry``), ``clip_iters`` clip-then-restrict passes. TT layers: orthogonalise the frames,
then clip the core (Theorem 3.2). Linear layers: the SVD with the singular values clamped.
"""

from __future__ import annotations

import copy

import torch

from svconv.methods.base import Layer, SVMethod, check_plain_conv, conv_geometry
from svconv.spectrum import clip_conv_singular_values, conv_spectral_norm


class ExactClip(SVMethod):
    """Clip the singular values of the periodic operator of every conv/TT/linear layer to ``clip_to``.

    For zeros-padded convs the periodic operator is the circular model of the layer (DESIGN.md); the
    estimate is its exact spectral norm after clipping, which can stay above the target when
    ``clip_iters`` is small (the restriction to the kernel support moves the spectrum again).
    """

    name = "clip"

    def check_layer(self, layer: Layer) -> None:
        check_plain_conv(layer, self.name)

    def control(self) -> None:
        for layer in self.layers:
            m = layer.module
            if layer.kind == "conv":
                grid, stride = conv_geometry(m, layer.spatial)
                m.weight.copy_(clip_conv_singular_values(m.weight, grid, self.clip_to, stride, n_iter=self.clip_iters))
            elif layer.kind == "tt":  # clip_ orthogonalises the frames first
                grid, _ = conv_geometry(m.core, layer.spatial)
                m.clip_(self.clip_to, grid, n_iter=self.clip_iters)
            elif layer.kind == "linear":
                U, S, Vh = torch.linalg.svd(m.weight, full_matrices=False)
                m.weight.copy_((U * S.clamp_max(self.clip_to)) @ Vh)

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "conv":
            grid, stride = conv_geometry(m, layer.spatial)
            return float(conv_spectral_norm(m.weight, grid, stride))
        if layer.kind == "tt":
            tt = copy.deepcopy(m)  # the estimate must not re-parametrise the trained layer
            tt.orthogonalize_()
            grid, _ = conv_geometry(tt.core, layer.spatial)
            return float(tt.spectral_norm(grid))
        return float(torch.linalg.matrix_norm(m.weight, ord=2))
