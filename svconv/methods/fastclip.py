"""``fastclip`` and ``fastclip-clipbn`` (Boroojeny et al. 2024): clip by projection steps on the layer's parameters.

A control step runs ``svconv.control.fastclip_`` on every conv, TT and linear layer: ``clip_iters``
projection steps, each after ``power_iters`` warm PowerQR steps on the top ``clip_k`` singular triples
(every one above the target is clipped), for any padding, stride, dilation or groups.

Batch norm, the paper's three variants (its Fig. 4):

- ``fastclip``: batch norm left alone (the conv alone is clipped);
- ``fastclip`` with ``bn_concat`` (FastClip-concat): a conv (or TT layer) followed by batch norm is
  controlled as the composition ``BN_eval o conv``, still by steps on the conv's (or TT core's) weight;
- ``fastclip-clipbn`` (FastClip-clip BN): the convs as ``fastclip``, and every batch norm clipped
  directly, per channel (``svconv.control.clip_bn_``), as prior work does.

TT layers without ``bn_concat``: frames orthogonalised, then the core alone.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svconv.control import clip_bn_, fastclip_
from svconv.layers import ConvBN, bn_lipschitz
from svconv.methods.base import Layer, SVMethod, _eval_mode
from svconv.methods.registry import register
from svconv.options import FastClipOptions, FastClipBNOptions
from svconv.spectrum._checks import check_count


class FastClip(SVMethod):
    """Clip the top ``clip_k`` singular values of every conv/TT-core/linear layer to ``clip_to`` by projection steps.

    ``clip_k``: singular values clipped per projection step (PowerQR's block size), >= 1; the other
    arguments are :class:`~svconv.methods.base.SVMethod`'s.
    """

    name = "fastclip"
    options = FastClipOptions
    order = 30
    summary = "projection steps on the weight from PowerQR's top-k singular triples (Boroojeny et al. 2024)"
    default_iters = 1
    bench_layer = "control"
    bench_model = "control"
    orthogonalises = True

    def __init__(self, *args, clip_k: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_k = check_count(clip_k, "clip_k")

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, clip_k={self.clip_k})"

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
            if layer.kind == "bn":
                self.results[layer.name] = clip_bn_(layer.module, self.clip_to)
                continue
            bn = layer.bn if self._concat(layer) else None
            self.results[layer.name] = fastclip_(layer.module, self.clip_to, layer.spatial, n_iter=self.clip_iters,
                                                 power_iters=self.power_iters, k=self.clip_k, bn=bn, state=layer.state,
                                                 generator=self._generator)  # fmt: skip

    def layer_norm(self, layer: Layer) -> float:
        """PowerQR's top value, warm-started from the control step's block (the same operator it controls)."""
        from svconv.spectrum import power_qr_triples

        m = layer.module
        if layer.kind == "bn":
            return bn_lipschitz(m)
        if self._concat(layer):
            operator, shape = ConvBN(m, layer.bn), layer.input_shape
        elif layer.kind == "tt":  # the whole layer, frames included
            return self.power_norm(layer, m, layer.input_shape, "v_est", self.power_iters)
        else:
            operator, shape = m, layer.input_shape
        V = layer.state.get("V")
        if V is not None and tuple(V.shape) != (self.clip_k, *shape):
            V = None
        with _eval_mode(m):
            triples = power_qr_triples(operator, shape, k=self.clip_k, n_iter=self.power_iters, V=V, generator=self._generator)
        layer.state["V"] = triples.right
        return float(triples.values[0])


class FastClipClipBN(FastClip):
    """FastClip on the conv/TT/linear layers, and every batch norm's per-channel scale clipped to ``clip_to``."""

    name = "fastclip-clipbn"
    options = FastClipBNOptions  # it clips batch norm on its own: no bn_concat
    order = 31
    summary = "fastclip, and batch norm clipped per channel to the target (FastClip-clip BN, Boroojeny et al. 2024)"
    bench_layer = None  # one layer has no batch norm: its rows would be fastclip's
    bench_model = "control"

    def handles(self, layer: Layer) -> bool:
        return layer.kind in ("conv", "tt", "linear") or (layer.kind == "bn" and _affine(layer.module))


def _affine(bn: nn.Module) -> bool:
    return bn.weight is not None


__all__ = ["FastClip", "FastClipClipBN", "check_fastclip_options"]

register(FastClip)
register(FastClipClipBN)
