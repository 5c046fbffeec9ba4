"""``none``: no control step; the estimate is a warm power iteration on each layer as it is."""

from __future__ import annotations

from svconv.methods.base import Layer, SVMethod
from svconv.methods.registry import register

ESTIMATE_ITERS = 20


class NoControl(SVMethod):
    """Train without controlling singular values; ``estimate`` runs 20 warm power iterations per layer."""

    name = "none"
    order = 0
    summary = "no control step"

    def layer_norm(self, layer: Layer) -> float:
        return self.power_norm(layer, layer.module, layer.input_shape, "v_est", max(self.power_iters, ESTIMATE_ITERS))

register(NoControl)
