"""AOL networks (Prach & Lampert 2022), as in the authors' code (berndprach/AOL, ``aol_code/models``).

``aol-small`` / ``aol-medium`` / ``aol-large`` are their patch-wise model with size parameter 16 / 32 / 48:
4x4 patches stacked into channels (concatenation pooling); a 1x1 AOL conv to 192 channels; 12 AOL 3x3
convs; a 1x1 AOL conv whose first ``size`` channels are kept; flatten; 14 AOL dense layers of
``(h/4)(w/4) size`` units; the first ``num_classes`` outputs are the scores. MaxMin after every layer but
the channel selections and the last dense layer. ``aol-fc`` is their fully connected model: 8 AOL dense
layers of ``4 h w`` units with MaxMin between them, the first ``num_classes`` outputs kept.
``aol-std`` (their ``standard_convolutional.py``, run ID 12) doubles the channels whenever the resolution
halves; ``aol-conv`` (``convolutional.py``, run ID 11) multiplies them by 4, keeping the number of
activations constant for the first blocks (:func:`aol_std`, :func:`aol_conv`). Halving is concatenation
pooling (space-to-depth) followed by a 1x1 AOL conv; its width changes start from the authors' "repeated
orthogonal" initialisation (:func:`repeated_orthogonal_`), every other kernel from the identity.
Every layer is 1-Lipschitz, so is the network.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
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


def repeated_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """The authors' ``RepeatedOrthogonalInitializer`` for a ``(c_out, c_in, 1, ..)`` kernel or ``(out, in)`` matrix,
    in place: with ``c_in <= c_out`` orthonormal columns (an isometry); otherwise each input channel gets a
    column drawn with replacement from an orthonormal basis of ``R^c_out``, divided by the square root of how
    often that column was drawn, so that the matrix has norm 1 (two inputs share a direction or are orthogonal).
    Draws from torch's global generator.
    """
    c_out, c_in = weight.shape[0], math.prod(weight.shape[1:])
    if weight.is_meta:  # no values to draw (a model built on the meta device for its structure)
        return weight
    with torch.no_grad():
        if c_in <= c_out:
            return nn.init.orthogonal_(weight)
        basis = nn.init.orthogonal_(torch.empty(c_out, c_out, dtype=weight.dtype, device=weight.device))
        pick = torch.randint(c_out, (c_in,), device=weight.device)
        counts = torch.bincount(pick, minlength=c_out).clamp(min=1).to(weight.dtype)
        weight.copy_((basis[:, pick] / counts[pick].sqrt()).view_as(weight))
    return weight


def _width_change(c_in: int, c_out: int) -> nn.Module:
    """A 1x1 AOL conv that changes the number of channels, initialised by :func:`repeated_orthogonal_`."""
    from svconv.layers import AOLConv2d

    conv = AOLConv2d(c_in, c_out, 1)
    repeated_orthogonal_(conv.parametrizations.weight.original)
    return conv


def _halvings(input_size: Sequence[int], name: str) -> int:
    """n for square inputs of side ``2^n`` (n >= 2): the nets halve the resolution down to 1x1."""
    h, w = (int(v) for v in input_size)
    n = h.bit_length() - 1
    if h != w or h != 2**n or n < 2:
        raise ValueError(f"{name} needs square inputs of side 2^n >= 4 (32x32 for CIFAR); got input_size {(h, w)}")
    return n


def aol_std(
    in_channels: int, num_classes: int, input_size: Sequence[int], base_width: int = 32, layers_per_block: int = 5
) -> nn.Sequential:
    """AOL-STD: a standard convolutional AOL net, channels x2 whenever the resolution halves (run ID 12).

    For inputs of side ``2^n`` (n = 5 for CIFAR): a 1x1 AOL conv to ``base_width`` channels and MaxMin; n blocks
    of ``layers_per_block - 1`` AOL 3x3 convs (width ``base_width · 2^i``) with MaxMin, each ending in
    concatenation pooling (2x2 to channels, ``x4``) and a 1x1 AOL conv to twice the block's width (no
    activation); a 1x1 AOL conv at ``base_width · 2^n`` channels (1024 on CIFAR) on the 1x1 map; the first
    ``num_classes`` channels are the scores. Input ``(b, in_channels, 2^n, 2^n)``, output ``(b, num_classes)``.
    """
    from svconv.layers import AOLConv2d, InvertibleDownsampling, MaxMin

    n = _halvings(input_size, "aol-std")
    if base_width * 2**n < num_classes or base_width % 2 or layers_per_block < 1:
        raise ValueError(
            f"base_width must be even with base_width·2^{n} >= num_classes ({num_classes}), layers_per_block >= 1; "
            f"got {base_width}, {layers_per_block}"
        )
    layers: list[nn.Module] = [_width_change(in_channels, base_width), MaxMin()]
    for i in range(n):
        width = base_width * 2**i
        for _ in range(layers_per_block - 1):
            layers += [AOLConv2d(width, width, 3), MaxMin()]
        layers += [InvertibleDownsampling(2), _width_change(4 * width, 2 * width)]
    last = base_width * 2**n
    layers += [AOLConv2d(last, last, 1), FirstChannels(num_classes), nn.Flatten()]
    return nn.Sequential(*layers)


def aol_conv(
    in_channels: int, num_classes: int, input_size: Sequence[int], base_width: int = 16, layers_per_block: int = 5
) -> nn.Sequential:
    """AOL-Conv: channels x4 whenever the resolution halves (run ID 11), so that the first blocks keep the
    number of activations.

    For inputs of side ``2^n`` (n = 5 for CIFAR) n blocks, each: concatenation pooling (2x2 to channels), a 1x1
    AOL conv to the block's width and MaxMin, then ``layers_per_block - 1`` AOL convs and MaxMin. Blocks
    ``0 .. n-3`` use 3x3 kernels and width ``base_width · 4^i`` (16, 64, 256 on CIFAR); block n-2, at 2x2, uses
    1x1 kernels and width ``W = base_width · 4^(n-2)`` (1024); then a 1x1 AOL conv and its first ``W/4``
    channels are kept; the last block (1x1 kernels, width W) pools to 1x1; a final 1x1 AOL conv, of which
    the first ``num_classes`` channels are the scores. Input ``(b, in_channels, 2^n, 2^n)``, output ``(b, num_classes)``.
    """
    from svconv.layers import AOLConv2d, InvertibleDownsampling, MaxMin

    n = _halvings(input_size, "aol-conv")
    top = base_width * 4 ** (n - 2)
    if top < num_classes or base_width % 4 or layers_per_block < 1:
        raise ValueError(
            f"base_width must be a multiple of 4 with base_width·4^{n - 2} >= num_classes ({num_classes}), "
            f"layers_per_block >= 1; got {base_width}, {layers_per_block}"
        )

    def block(c_in: int, width: int, kernel: int) -> list[nn.Module]:
        out: list[nn.Module] = [InvertibleDownsampling(2), _width_change(4 * c_in, width), MaxMin()]
        for _ in range(layers_per_block - 1):
            out += [AOLConv2d(width, width, kernel), MaxMin()]
        return out

    layers: list[nn.Module] = []
    c = in_channels
    for i in range(n - 2):
        layers += block(c, base_width * 4**i, 3)
        c = base_width * 4**i
    layers += block(c, top, 1)
    layers += [_width_change(top, top), FirstChannels(top // 4)]  # the authors initialise it orthogonal
    layers += block(top // 4, top, 1)
    layers += [AOLConv2d(top, top, 1), FirstChannels(num_classes), nn.Flatten()]
    return nn.Sequential(*layers)
