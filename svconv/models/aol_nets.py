"""AOL networks (Prach & Lampert 2022), as in the authors' code.

``aol-small`` / ``aol-medium`` / ``aol-large`` are their patch-wise model with size parameter 16 / 32 / 48:
4x4 patches stacked into channels (concatenation pooling); a 1x1 AOL conv to 192 channels; 12 AOL 3x3
convs; a 1x1 AOL conv whose first ``size`` channels are kept; flatten; 14 AOL dense layers of
``(h/4)(w/4) size`` units; the first ``num_classes`` outputs are the scores. MaxMin after every layer but
the channel selections and the last dense layer. ``aol-fc`` is their fully connected model: 8 AOL dense
layers of ``4 h w`` units with MaxMin between them, the first ``num_classes`` outputs kept.
Every layer is 1-Lipschitz, so is the network.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svconv.models.channels import FirstChannels

AOL_SIZES = {"aol-small": 16, "aol-medium": 32, "aol-large": 48}


def aol_patchwise(
    size: int,
    in_channels: int,
    num_classes: int,
    input_size: Sequence[int],
    patch: int = 4,
    channels: int = 192,
    conv_layers: int = 12,
    dense_layers: int = 14,
) -> nn.Sequential:
    """The patch-wise AOL model; ``size`` = 16 (small), 32 (medium), 48 (large). Defaults are the paper's.

    ``input_size`` ``(h, w)`` must be divisible by ``patch``; ``(h/patch)(w/patch) size >= num_classes``.
    Input ``(b, in_channels, h, w)``, output ``(b, num_classes)``.
    """
    from svconv.layers import AOLConv2d, AOLLinear, InvertibleDownsampling, MaxMin

    h, w = (int(v) for v in input_size)
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"input_size {tuple(input_size)} must be divisible by the patch size {patch}")
    units = (h // patch) * (w // patch) * size
    if units < num_classes or channels < size or size % 2:
        raise ValueError(
            f"size must be even, at most channels={channels}, and give >= {num_classes} units on {h}x{w}; got {size}"
        )
    # Concatenation pooling: the pixels of each patch become channels (an orthogonal reshape).
    layers: list[nn.Module] = [InvertibleDownsampling(patch), AOLConv2d(in_channels * patch * patch, channels, 1), MaxMin()]
    for _ in range(conv_layers):
        layers += [AOLConv2d(channels, channels, 3), MaxMin()]
    layers += [AOLConv2d(channels, channels, 1), FirstChannels(size), nn.Flatten()]
    for i in range(dense_layers):
        layers.append(AOLLinear(units, units))
        if i < dense_layers - 1:
            layers.append(MaxMin())
    layers.append(FirstChannels(num_classes))
    return nn.Sequential(*layers)


def aol_fc(
    in_channels: int, num_classes: int, input_size: Sequence[int], width: int | None = None, depth: int = 8
) -> nn.Sequential:
    """The fully connected AOL model: ``depth`` AOL dense layers of ``width`` units (default ``4 h w``)."""
    from svconv.layers import AOLLinear, MaxMin

    h, w = (int(v) for v in input_size)
    width = 4 * h * w if width is None else width
    if width < num_classes or width % 2 or depth < 1:
        raise ValueError(f"width must be even and >= num_classes ({num_classes}), depth >= 1; got {width}, {depth}")
    layers: list[nn.Module] = [nn.Flatten(), AOLLinear(in_channels * h * w, width)]
    for _ in range(depth - 1):
        layers += [MaxMin(), AOLLinear(width, width)]
    layers.append(FirstChannels(num_classes))
    return nn.Sequential(*layers)
