"""LipConvNet-N (Singla & Feizi 2021) with SOC layers, and with SOC-TT layers at a TT rank (Senderovich et al. 2022, Sec. 5.1).

As in the authors' code: 5 blocks of N/5 layers ``SOC -> MaxMin``; block b has ``32 * 2^b`` channels
(64, 128, ..., 1024) and ends with a stride-2 layer: an invertible downsampling (``c -> 4c`` channels,
half the size) before its SOC, whose kernel is 1x1 in the last block. SOC layers are square, so a width
change zero-pads the channels before the SOC (wider) or keeps its first channels after it (narrower), as
the reference implementation does. A final 1x1 SOC keeps the first ``num_classes`` channels as scores.
Inputs up to 32x32 are zero-padded to 32x32 (MNIST's 28x28), so the last block works at 1x1.

With ``rank``, each layer (``c_in -> c_out``, stride s, the classifier included) becomes an SOC-TT as in
Senderovich et al.'s code: ``U`` (c_in -> r1 = min(r, c_in)) before the downsampling, an SOC core on
``max(r1 s^2, r2)`` channels, ``V`` (r2 = min(r, c_out) -> c_out); see ``svconv.layers.SOCTT``. A layer stays a
plain SOC where its SOC-TT would not have fewer weights (:func:`soc_tt_ranks`), so a rank never adds
weights. Senderovich et al.'s code keeps such layers as SOC-TT (LipConvNet-5: the 128 -> 256 layer at
rank 128, 2,408,448 weights for the SOC's 2,359,296; the 256 -> 512 layer at 256); their Table 1
compression (dense SOC weights over SOC-TT weights, biases excluded, SOC kernels counted in full as
``c^2 k^2``) is 2.9 / 1.2 for LipConvNet-5 at ranks 128 / 256, exactly 2.897 / 1.228 with their layout;
ours is 2.920 / 1.245 (LipConvNet-20: 3.311 / 1.416, paper 3.3 / 1.4; LipConvNet-30: 3.494 / 1.490,
paper 3.5 / 1.5), every value within the paper's rounding.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from torch import nn

from svconv.models.channels import FirstChannels, PadChannels, PadTo

SIDE = 32  # five stride-2 blocks bring 32x32 to 1x1
INIT_CHANNELS = 32


def soc_weights(c_in: int, c_out: int, kernel: int, stride: int) -> int:
    """Kernel weights of LipConvNet's SOC layer ``c_in -> c_out`` (square SOC on ``max(c_in s^2, c_out)``)."""
    return max(c_in * stride**2, c_out) ** 2 * kernel**2


def soc_tt_weights(c_in: int, c_out: int, kernel: int, stride: int, r1: int, r2: int) -> int:
    """Kernel weights of its SOC-TT at ranks ``(r1, r2)``: ``U``, the core on ``max(r1 s^2, r2)``, ``V``."""
    return c_in * r1 + max(r1 * stride**2, r2) ** 2 * kernel**2 + r2 * c_out


def soc_tt_ranks(c_in: int, c_out: int, kernel: int, stride: int, rank: int) -> tuple[int, int] | None:
    """The ranks ``(min(rank, c_in), min(rank, c_out))`` of the SOC-TT for this layer, or None where it would
    not have fewer weights than the SOC (the layer stays an SOC)."""
    r1, r2 = min(rank, c_in), min(rank, c_out)
    return (r1, r2) if soc_tt_weights(c_in, c_out, kernel, stride, r1, r2) < soc_weights(c_in, c_out, kernel, stride) else None


def layer_shapes(
    depth: int, in_channels: int, num_classes: int, init_channels: int = INIT_CHANNELS
) -> Iterator[tuple[int, int, int, int]]:
    """``(c_in, c_out, kernel, stride)`` of each SOC layer of LipConvNet-``depth`` in order, the classifier last."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 5 or depth % 5:
        raise ValueError(f"depth must be a positive multiple of 5; got {depth}")
    c_in, planes = in_channels, init_channels
    for block in range(5):
        for i in range(depth // 5):
            last = i == depth // 5 - 1
            stride, c_out = (2, 2 * planes) if last else (1, planes)
            yield c_in, c_out, 1 if (last and block == 4) else 3, stride
            c_in = c_out
        planes = c_in
    yield c_in, num_classes, 1, 1


def rank_limit(depth: int, in_channels: int = 3, num_classes: int = 10, init_channels: int = INIT_CHANNELS) -> int | None:
    """The smallest rank at which no layer becomes an SOC-TT (None: not even rank 1 compresses one). The
    SOC-TT weights grow with the rank, so each layer compresses up to some rank and no further."""
    best = 0
    for c_in, c_out, k, s in layer_shapes(depth, in_channels, num_classes, init_channels):
        for r in range(best + 1, max(c_in, c_out) + 1):
            if soc_tt_ranks(c_in, c_out, k, s, r) is None:
                break
            best = r
    return best + 1 if best else None


def square_layer(c_in: int, c_out: int, kernel: int, stride: int, make: Callable[[int, int], nn.Module]) -> list[nn.Module]:
    """LipConvNet's way to use a square layer ``make(c, kernel)`` for ``c_in -> c_out`` at ``stride`` (1 or 2): the
    invertible downsampling first (``c_in -> 4 c_in``), zero channels up to ``c = max(c_in, c_out)``, the layer,
    then its first ``c_out`` channels (Singla & Feizi's code)."""
    from svconv.layers import InvertibleDownsampling

    mods: list[nn.Module] = []
    if stride == 2:
        mods.append(InvertibleDownsampling(2))
        c_in *= 4
    c = max(c_in, c_out)
    if c_in < c:
        mods.append(PadChannels(c))
    mods.append(make(c, kernel))
    if c_out < c:
        mods.append(FirstChannels(c_out))
    return mods


def lipconvnet_of(
    layer: Callable[[int, int, int, int], list[nn.Module]],
    depth: int,
    in_channels: int,
    num_classes: int,
    input_size: Sequence[int],
    init_channels: int = INIT_CHANNELS,
) -> nn.Sequential:
    """LipConvNet-``depth`` with ``layer(c_in, c_out, kernel, stride)`` (modules) for each of :func:`layer_shapes`:
    MaxMin after each but the classifier, inputs up to 32x32 zero-padded to 32x32, logits flattened."""
    from svconv.layers import MaxMin

    shapes = list(layer_shapes(depth, in_channels, num_classes, init_channels))
    h, w = (int(v) for v in input_size)
    if max(h, w) > SIDE:
        raise ValueError(f"LipConvNet takes inputs of at most 32x32 (they are padded to 32x32); got {h}x{w}")
    layers: list[nn.Module] = [PadTo(SIDE)] if (h, w) != (SIDE, SIDE) else []
    for shape in shapes[:-1]:
        layers += layer(*shape) + [MaxMin()]
    # The classifier: a 1x1 layer on the 1x1 map whose first num_classes channels are the scores.
    return nn.Sequential(*layers, *layer(*shapes[-1]), nn.Flatten())


def lipconvnet(
    depth: int,
    in_channels: int,
    num_classes: int,
    input_size: Sequence[int],
    rank: int | None = None,
    init_channels: int = INIT_CHANNELS,
) -> nn.Sequential:
    """LipConvNet-``depth`` (a multiple of 5) for inputs ``(b, in_channels, h, w)`` with h, w <= 32: SOC layers, or
    SOC-TT at ``rank`` where that has fewer weights (:func:`soc_tt_ranks`)."""
    from svconv.layers import SOC, SOCTT

    def soc(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
        if rank is not None and soc_tt_ranks(c_in, c_out, kernel, stride, rank) is not None:
            return [SOCTT(c_in, rank, kernel_size=kernel, out_channels=c_out, stride=stride)]
        return square_layer(c_in, c_out, kernel, stride, lambda c, k: SOC(c, kernel_size=k))

    return lipconvnet_of(soc, depth, in_channels, num_classes, input_size, init_channels)
