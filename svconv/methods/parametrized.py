"""``aol`` and ``soc``: the parametrisation is the control (AOL and SOC layers are 1-Lipschitz by
construction), so there is no control step; ``estimate`` still reports each layer's spectral norm.

Both methods go with their architectures (``aol-*`` and ``lipconvnet-*``; see ``check_compatible``).
The estimate is a warm power iteration on the layer in eval mode (SOC: its evaluation series), which
also covers any plain conv or linear layer of the model.
"""

from __future__ import annotations

import torch

from svconv.control import ControlResult
import svconv.methods.flops as F
from svconv.methods.base import Layer, SVMethod
from svconv.methods.registry import register

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
    families = ("aol",)
    tt = False  # AOL rescales the full kernel
    order = 60
    summary = "AOL layers' own rescaling (aol-* architectures; Prach & Lampert 2022)"
    bench_layer = "control"

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.aol_flops(c_out, c_in, kernel)

    @classmethod
    def bench_skip(cls, padding: str, tt: bool, ndim: int) -> str | None:
        if tt:
            return "AOL rescales the full kernel: it has no TT form"
        if ndim != 2:
            return "AOL layers are 2-D only (AOLConv2d)"
        return None

    @classmethod
    def layer_control(cls, module, input_shape, clip_to, iters, state) -> ControlResult:
        """AOL's rescaling ``K[:, j] d_j`` of a conv's kernel, in place (target 1, whatever ``clip_to``)."""
        from svconv.control.layer import relative_change
        from svconv.layers.aol import aol_conv_scale  # the rescaling AOLConv2d applies in its forward

        with torch.no_grad():
            before = module.weight.detach().clone()
            module.weight.mul_(aol_conv_scale(before).view(1, -1, 1, 1))
        return ControlResult(None, 1.0, 1, relative_change(before, module))


class SOCMethod(_Parametrized):
    """Skew orthogonal convolutions (Singla & Feizi 2021), SOC-TT with a rank: no control step."""

    name = "soc"
    families = ("lipconvnet",)
    order = 70
    summary = "SOC layers' orthogonal parametrisation (lipconvnet-N; Singla & Feizi 2021)"
    bench_model = "forward"  # one eval-mode forward of every SOC / SOC-TT layer

register(AOLMethod)
register(SOCMethod)
