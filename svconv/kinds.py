"""Layer kinds: what a layer is for the ``layers`` results table and for SV-control methods.

Each svconv layer class declares its kind as the class attribute ``layer_kind`` (TT layers ``TT``, SOC and
SOC-TT ``SOC``, AOL ``AOL``, other libraries' layers ``PEER``); PyTorch's own conv, linear and batch-norm classes get theirs from their type.
A module with neither has no kind: parameter-free reshaping layers (MaxMin, InvertibleDownsampling,
FirstChannels, PadChannels, PadTo) are bounded by the network bound but have no layer rows.

This module imports nothing of svconv, so every subpackage may use it.
"""

from __future__ import annotations

import enum

from torch import nn
from torch.nn.utils import parametrize

#: PyTorch's convolutions (not transposed) and batch norms, by their public classes.
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class LayerKind(str, enum.Enum):
    """The ``kind`` column of the ``layers`` table (a ``str``, so ``LayerKind.CONV == "conv"``)."""

    CONV = "conv"
    TT = "tt"
    LINEAR = "linear"
    BN = "bn"
    SOC = "soc"
    AOL = "aol"
    PEER = "peer"  # another library's 1-Lipschitz layer (svconv.layers.peers)

    def __str__(self) -> str:
        return self.value


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The kind of ``module``: its class's ``layer_kind``, else that of a PyTorch conv / linear / batch norm,
    else None (no layer row, not controlled)."""
    declared = getattr(type(module), "layer_kind", None)
    if declared is None and parametrize.is_parametrized(module):
        # a plain layer whose weight is parametrised (e.g. by svconv.layers.aol): the parametrisation's kind
        kinds = [getattr(type(p), "layer_kind", None) for plist in module.parametrizations.values() for p in plist]
        declared = next((k for k in kinds if k is not None), None)
    if declared is not None:
        return LayerKind(declared)
    if isinstance(module, CONV_TYPES):
        return LayerKind.CONV
    if isinstance(module, nn.Linear):
        return LayerKind.LINEAR
    if isinstance(module, BN_TYPES):
        return LayerKind.BN
    return None
