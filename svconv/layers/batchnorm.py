"""Batch norm as a Lipschitz layer (eval mode): its constant, and conv + BN composed into one linear operator
whose spectrum can be extracted and controlled as one layer (Boroojeny et al. 2024, FastClip)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from svconv.kinds import BN_TYPES
from svconv.spectrum.bounds import conv_operator_bound


def bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, each ``(C,)``: batch norm in eval mode is ``x -> scale · x + shift`` per channel,
    ``scale = gamma / sqrt(running_var + eps)``, ``shift = beta - running_mean · scale`` (differentiable in gamma, beta)."""
    if not isinstance(bn, BN_TYPES):
        raise TypeError(f"bn must be a BatchNorm1d/2d/3d; got {type(bn).__name__}")
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("bn must track running statistics (track_running_stats=True): only then is eval-mode BN affine")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def bn_lipschitz(bn: nn.Module) -> float:
    """Lipschitz constant of batch norm in eval mode: ``max_i |gamma_i| / sqrt(running_var_i + eps)`` (exact).

    Computed in float64, so that as a certificate it is not rounded below the float32 layer's constant.
    """
    bn_scale_shift(bn)  # type and running-stat checks
    scale = bn.running_var.detach().double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double().abs()
    return float(scale.max())


class ConvBN(nn.Module):
    """``bn(conv(x))`` with the batch norm always in its eval-mode (affine) form, whatever the training flag.

    ``conv``: an ``nn.Conv2d``/``nn.Conv3d`` or a ``svconv.tt`` TT conv; ``bn``: the batch norm on its outputs.
    Both are shared, not copied, so gradients reach their parameters (FastClip) and
    ``svconv.spectrum.power_qr(ConvBN(conv, bn), input_shape)`` gives the composed operator's spectrum.
    """

    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        bn_scale_shift(bn)  # type and running-stat checks
        out = getattr(conv, "out_channels", None)
        if out is None:
            raise TypeError(f"conv must be a conv layer with out_channels; got {type(conv).__name__}")
        if bn.num_features != out:
            raise ValueError(f"bn.num_features must equal conv.out_channels={out}; got {bn.num_features}")
        self.conv, self.bn = conv, bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        scale, shift = bn_scale_shift(self.bn)
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return y * scale.view(shape) + shift.view(shape)

    def fused_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the single conv equal to this composition (with the graph)."""
        c = self.conv
        w = c.full_weight() if hasattr(c, "full_weight") else c.weight
        scale, shift = bn_scale_shift(self.bn)
        b = c.bias if c.bias is not None else torch.zeros_like(scale)
        return w * scale.view(-1, *([1] * (w.dim() - 1))), b * scale + shift

    def _geometry(self) -> nn.Module:
        return self.conv.core if hasattr(self.conv, "core") else self.conv

    def to_conv(self) -> nn.Module:
        """A plain ``nn.Conv2d``/``nn.Conv3d`` computing the same function (eval mode)."""
        g = self._geometry()
        w, b = self.fused_weight()
        cls = nn.Conv2d if w.dim() == 4 else nn.Conv3d
        conv = cls(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=g.stride, padding=g.padding,
                   dilation=g.dilation, bias=True, padding_mode=g.padding_mode, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        return conv

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """Certified bound of the fused conv (``svconv.spectrum.bounds``) for one input ``(c_in, *spatial)``."""
        g = self._geometry()
        with torch.no_grad():
            w, _ = self.fused_weight()
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != w.dim() - 1 or shape[0] != w.shape[1]:
            raise ValueError(f"input_shape must be ({w.shape[1]}, *spatial) with {w.dim() - 2} spatial sizes; got {shape}")
        return conv_operator_bound(w, shape[1:], g.stride, g.padding, g.dilation, g.padding_mode)


def conv_bn(conv: nn.Module, bn: nn.Module) -> ConvBN:
    """The composed eval-mode operator ``bn(conv(x))`` as a module (see :class:`ConvBN`)."""
    return ConvBN(conv, bn)
