"""LipConvNet-N built from another library's 1-Lipschitz layers (``svconv.layers.peers``) instead of SOC.

The skeleton is LipConvNet's (Singla & Feizi 2021), from ``svconv.models.lipconvnet``'s own hooks
(``lipconvnet_of``, ``square_layer``), as the dense SOC net is built: a stride-2 layer is an invertible
downsampling (``c -> 4c`` channels) before the layer, a width change pads channels with zeros before it
(wider) or keeps its first channels after it (narrower), MaxMin after every layer but the classifier,
whose first ``num_classes`` channels on the 1x1 map are the scores. Only the square SOC is replaced, by
the method's k x k stride-1 conv with its own padding, so the methods differ by their layers alone. Every such layer is a :class:`svconv.layers.peers.PeerLayer`.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svconv.layers.peers import peer_conv, peer_problem
from svconv.models.lipconvnet import INIT_CHANNELS, lipconvnet_of, square_layer


def peer_lipconvnet(
    method: str, depth: int, in_channels: int, num_classes: int, input_size: Sequence[int], init_channels: int = INIT_CHANNELS
) -> nn.Sequential:
    """LipConvNet-``depth`` for inputs ``(b, in_channels, h, w)``, h, w <= 32, from ``method``'s layers
    (``aoc``, ``bcop``, ``sll``, ``cayley``, ``bjorck``); logits ``(b, num_classes)``. ``init_channels``: the
    first block's width (32 in LipConvNet; each block doubles it).

    ImportError saying what to install when the method's library does not import.
    """
    problem = peer_problem(method)
    if problem:
        raise ImportError(problem)

    def layer(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
        return square_layer(c_in, c_out, kernel, stride, lambda c, k: peer_conv(method, c, c, k))

    return lipconvnet_of(layer, depth, in_channels, num_classes, input_size, init_channels)
