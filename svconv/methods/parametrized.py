"""``aol`` and ``soc``: the parametrisation is the control (AOL and SOC layers are 1-Lipschitz by
construction), so there is no control step; ``estimate`` still reports each layer's spectral norm.

Both methods go with their architectures (``aol-*`` and ``lipconvnet-*``; see ``check_compatible``).
The estimate is a warm power iteration on the layer in eval mode (SOC: its evaluation series), which
also covers any plain conv or linear layer of the model.
"""

from __future__ import annotations

from svconv.methods.base import Layer, SVMethod

ESTIMATE_ITERS = 20
# Parametrised layers are (nearly) orthogonal or rescaled to norm <= 1: every unit vector already gives a
# value within the Taylor tail / frame error of the norm, so a few warm steps suffice, and each step
# through an SOC layer costs two series of eval_terms convolutions (a LipConvNet-5 has 1024-channel ones).
LIPSCHITZ_ESTIMATE_ITERS = 3


class _Parametrized(SVMethod):
    def handles(self, layer: Layer) -> bool:
        return layer.kind in ("lipschitz", "conv", "tt", "linear")

    def layer_norm(self, layer: Layer) -> float:
        n_iter = LIPSCHITZ_ESTIMATE_ITERS if layer.kind == "lipschitz" else ESTIMATE_ITERS
        return self.power_norm(layer, layer.module, layer.input_shape, "v_est", max(self.power_iters, n_iter))


class AOLMethod(_Parametrized):
    """Almost-orthogonal Lipschitz layers (Prach & Lampert 2022): no control step."""

    name = "aol"


class SOCMethod(_Parametrized):
    """Skew orthogonal convolutions (Singla & Feizi 2021), SOC-TT with a rank: no control step."""

    name = "soc"
