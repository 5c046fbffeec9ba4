"""LipConvNet-N (Singla & Feizi 2021) with SOC layers, and with SOC-TT layers at a TT rank (Senderovich et al. 2022, Sec. 5.1).

As in the authors' code: 5 blocks of N/5 layers ``SOC -> MaxMin``; block b has ``32 * 2^b`` channels
(64, 128, ..., 1024) and ends with a stride-2 layer: an invertible downsampling (``c -> 4c`` channels,
half the size) before its SOC, whose kernel is 1x1 in the last block. SOC layers are square, so a width
change zero-pads the channels before the SOC (wider) or keeps its first channels after it (narrower), as
the reference implementation does. A final 1x1 SOC keeps the first ``num_classes`` channels as scores.
Inputs up to 32x32 are zero-padded to 32x32 (MNIST's 28x28), so the last block works at 1x1.

With ``rank``, every SOC with more than ``rank`` channels becomes an SOC-TT (1x1 ``U`` -> SOC core on
``rank`` channels -> 1x1 ``V``), except the first layer and the final one (as ``to_tt(skip_first=True)``
and the seed's ranks, which exclude the classifier).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svconv.models.channels import FirstChannels, PadChannels, PadTo

SIDE = 32  # five stride-2 blocks bring 32x32 to 1x1
INIT_CHANNELS = 32


def lipconvnet(
    depth: int,
    in_channels: int,
    num_classes: int,
    input_size: Sequence[int],
    rank: int | None = None,
    init_channels: int = INIT_CHANNELS,
) -> nn.Sequential:
    """LipConvNet-``depth`` (a multiple of 5) for inputs ``(b, in_channels, h, w)`` with h, w <= 32."""
    from svconv.layers import SOC, SOCTT, InvertibleDownsampling, MaxMin

    if depth < 5 or depth % 5:
        raise ValueError(f"depth must be a positive multiple of 5; got {depth}")
    h, w = (int(v) for v in input_size)
    if max(h, w) > SIDE:
        raise ValueError(f"LipConvNet takes inputs of at most 32x32 (they are padded to 32x32); got {h}x{w}")
    per_block = depth // 5
    layers: list[nn.Module] = [PadTo(SIDE)] if (h, w) != (SIDE, SIDE) else []
    count = 0

    def soc(c_in: int, c_out: int, kernel: int, stride: int, first: bool) -> list[nn.Module]:
        mods: list[nn.Module] = []
        if stride == 2:
            mods.append(InvertibleDownsampling(2))
            c_in *= 4
        c = max(c_in, c_out)
        if c_in < c:
            mods.append(PadChannels(c))
        if rank is not None and rank < c and not first:
            mods.append(SOCTT(c, rank, kernel_size=kernel))
        else:
            mods.append(SOC(c, kernel_size=kernel))
        if c_out < c:
            mods.append(FirstChannels(c_out))
        return mods

    c_in, planes = in_channels, init_channels
    for block in range(5):
        for i in range(per_block):
            last = i == per_block - 1
            stride, c_out = (2, 2 * planes) if last else (1, planes)
            kernel = 1 if (last and block == 4) else 3
            layers += soc(c_in, c_out, kernel, stride, first=count == 0)
            layers.append(MaxMin())
            count += 1
            c_in = c_out
        planes = c_in
    # The classifier: a 1x1 SOC on the 1x1 map whose first num_classes channels are the scores.
    c = max(c_in, num_classes)
    layers += ([PadChannels(c)] if c > c_in else []) + [SOC(c, kernel_size=1), FirstChannels(num_classes), nn.Flatten()]
    return nn.Sequential(*layers)
