"""``clip``: exact clipping of every singular value to a tolerance around the target (Sedghi et al. 2019;
strided: Senderovich et al. 2022 Sec. 5.2; the search on the clip level: ``svconv.spectrum.clip_to_target``).

A control step runs ``svconv.control.clip_`` on every conv, TT and linear layer: convs on the periodic
operator of the layer's grid and stride (``grid_and_stride``), until the true norm is within ``clip_tol``
of the target, starting from the clip level the layer's previous control step ended with; TT layers
through the orthogonalised core (Theorem 3.2); linear layers by their SVD. ``clip_tol=0``:
``clip_iters`` plain clip-then-restrict passes instead.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch

from svconv.control import clip_
import svconv.methods.flops as F
from svconv.methods.base import Layer, SVMethod, check_plain_conv, grid_and_stride
from svconv.methods.registry import register
from svconv.options import ClipOptions
from svconv.spectrum import conv_spectral_norm

#: passes a control step may spend to reach the tolerance (``clip_to_target``'s default)
MAX_PASSES = 20


class ExactClip(SVMethod):
    """Clip the singular values of the periodic operator of every conv/TT/linear layer to ``clip_to``.

    For zeros-padded convs the periodic operator is the circular model of the layer (``docs/design.md``);
    the estimate is its exact spectral norm after clipping, within ``clip_tol`` of the target (with
    ``clip_tol=0`` it can stay above it: the restriction to the kernel support moves the spectrum again).
    """

    name = "clip"
    options = ClipOptions
    order = 10
    max_passes = MAX_PASSES  # per layer and control step, when clip_tol > 0
    summary = "exact clipping to within --clip-tol of the target (Sedghi et al. 2019)"
    default_iters = MAX_PASSES  # bench: the most passes clip_to_target may spend
    bench_layer = "control"
    bench_model = "control"
    flops_on_grid = True
    orthogonalises = True

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.clip_flops(c_out, c_in, size, stride, iters)

    @classmethod
    def layer_control(cls, module, input_shape: Sequence[int], clip_to: float, iters: int | None, state: dict):
        return clip_(module, clip_to, tuple(input_shape[1:]), max_passes=iters or MAX_PASSES, level=state.get("level"))

    @classmethod
    def bench_method(cls, clip_to: float, iters: int | None) -> "ExactClip":
        method = cls(clip_to=clip_to)
        method.max_passes = iters or MAX_PASSES
        return method

    def check_layer(self, layer: Layer) -> None:
        check_plain_conv(layer, self.name)

    def control(self) -> None:
        tol = self.clip_tol
        for layer in self.layers:
            # The level a step ended with is the next step's first guess: weights move little in between.
            res = clip_(layer.module, self.clip_to, layer.spatial, tol=tol, level=layer.state.get("level"),
                        max_passes=self.clip_iters if tol == 0 else self.max_passes)  # fmt: skip
            if tol > 0 and res.level is not None:
                layer.state["level"] = res.level
            self.results[layer.name] = res

    def layer_norm(self, layer: Layer) -> float:
        m = layer.module
        if layer.kind == "conv":
            grid, stride = grid_and_stride(m, layer.spatial)
            return float(conv_spectral_norm(m.weight, grid, stride))
        if layer.kind == "tt":
            tt = copy.deepcopy(m)  # the estimate must not re-parametrise the trained layer
            tt.orthogonalize_()
            grid, _ = grid_and_stride(tt.core, layer.spatial)
            return float(tt.spectral_norm(grid))
        return float(torch.linalg.matrix_norm(m.weight, ord=2))

register(ExactClip)
