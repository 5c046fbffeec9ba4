"""``fastclip`` (Boroojeny et al. 2024): clip by projection steps on the layer's own parameters.

A control step runs ``svconv.control.fastclip_`` on every conv, TT and linear layer: ``clip_iters``
projection steps, each after ``power_iters`` warm PowerQR (k = 1) steps, for any padding, stride,
dilation or groups. ``bn_concat``: a conv (or TT layer) followed by batch norm is controlled as the
composition ``BN_eval o conv`` (FastClip-concat), still by steps on the conv's (or TT core's) weight
only. TT layers without it: frames orthogonalised, then the core alone.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svconv.control import fastclip_
from svconv.control.fastclip import top_singular_triple
from svconv.layers import ConvBN
from svconv.methods.base import Layer, SVMethod


class FastClip(SVMethod):
    """Lower every conv/TT-core/linear layer's top singular value to ``clip_to`` by projection steps."""

    name = "fastclip"
    order = 30
    summary = "projection steps on the weight from PowerQR's top singular pair (Boroojeny et al. 2024)"
    default_iters = 1
    bench_layer = "control"
    bench_model = "control"
    orthogonalises = True

    @classmethod
    def layer_control(cls, module, input_shape: Sequence[int], clip_to: float, iters: int | None, state: dict):
        import torch

        return fastclip_(module, clip_to, tuple(input_shape[1:]), n_iter=iters or 1, power_iters=iters or 1,
                         state=state, generator=torch.Generator().manual_seed(0))  # fmt: skip

    @classmethod
    def bench_method(cls, clip_to: float, iters: int | None) -> "FastClip":
        return cls(clip_to=clip_to, clip_iters=iters or 1, power_iters=iters or 1)

    def _concat(self, layer: Layer) -> bool:
        return self.bn_concat and layer.bn is not None and layer.kind in ("conv", "tt")

    def control(self) -> None:
        for layer in self.layers:
            bn = layer.bn if self._concat(layer) else None
            self.results[layer.name] = fastclip_(layer.module, self.clip_to, layer.spatial, n_iter=self.clip_iters,
                                                 power_iters=self.power_iters, bn=bn, state=layer.state,
                                                 generator=self._generator)  # fmt: skip

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if self._concat(layer):
            return self.power_norm(layer, ConvBN(m, layer.bn), layer.input_shape, "v", self.power_iters)
        if layer.kind == "tt":  # the whole layer, frames included
            return self.power_norm(layer, m, layer.input_shape, "v_est", self.power_iters)
        return self.power_norm(layer, m, layer.input_shape, "v", self.power_iters)


__all__ = ["FastClip", "top_singular_triple"]
