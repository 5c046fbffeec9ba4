"""Wide residual networks WRN-d-w (Zagoruyko & Komodakis 2016), the CIFAR variant used by Gouk et al.

Pre-activation basic blocks ``BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3``; three groups of
``(d - 4) / 6`` blocks with ``16w, 32w, 64w`` channels and strides 1, 2, 2; ``BN-ReLU``, global average
pooling and a linear head. Where the shape changes the shortcut is, by default, parameter-free as in
Senderovich et al.'s code (``wide_resnet16_10`` passes ``conv_shortcut=False`` in their src/WideResNet.py):
2x2 average pooling where the stride is 2, then zero channels up to the new width; so Table 2's
compression ratios (3.6 / 2.4 / 1.8 at ranks 192 / 256 / 320) hold over the whole network. With
``conv_shortcut=True`` (arch ``wrn-D-W-conv``) it is a 1x1 conv; WRN-16-10 then has about 17.1 M weights.
"""

from __future__ import annotations

from torch import nn

from svconv.models.blocks import Residual
from svconv.models.channels import PadChannels


def _conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def _block(c_in: int, c_out: int, stride: int, dropout: float, conv_shortcut: bool) -> nn.Module:
    body = [_conv3(c_in, c_out, stride), nn.BatchNorm2d(c_out), nn.ReLU()]
    if dropout > 0:
        body.append(nn.Dropout(dropout))
    body.append(_conv3(c_out, c_out))
    if c_in == c_out and stride == 1:
        # Identity shortcut: the pre-activation is part of the residual branch.
        return Residual(nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), *body))
    if not conv_shortcut:
        # Parameter-free, on the block's input as in the reference code: pool the stride away, pad channels
        # (ceil_mode: odd maps, e.g. MNIST's 7x7, pool to the strided conv's ceil(n/2); even ones as theirs).
        # Their zeros go half before, half after the input's channels, ours after: a relabelling of the
        # body's output channels, the same family of networks.
        free = ([nn.AvgPool2d(stride, ceil_mode=True)] if stride != 1 else []) + ([PadChannels(c_out)] if c_out != c_in else [])
        return Residual(nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), *body), nn.Sequential(*free))
    # Projection shortcut: as in the reference code, it sees the pre-activated input, so the
    # pre-activation sits before the residual split.
    shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), Residual(nn.Sequential(*body), shortcut))


def wide_resnet(
    depth: int, width: int, in_channels: int, num_classes: int, dropout: float = 0.0, conv_shortcut: bool = False
) -> nn.Sequential:
    """WRN-``depth``-``width``; ``depth = 6 n + 4``. Input ``(b, in_channels, h, w)`` with h, w >= 4 (even).

    ``conv_shortcut``: a 1x1 conv where the shape changes; False (the reference code's WRN-16-10): average
    pooling and zero channels, no weights."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...); got {depth}")
    if width < 1:
        raise ValueError(f"width must be a positive int; got {width}")
    n = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    layers: list[nn.Module] = [_conv3(in_channels, widths[0])]
    for group, stride in zip(range(3), (1, 2, 2)):
        for i in range(n):
            c_in = widths[group] if i == 0 else widths[group + 1]
            layers.append(_block(c_in, widths[group + 1], stride if i == 0 else 1, dropout, conv_shortcut))
    layers += [
        nn.BatchNorm2d(widths[3]),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[3], num_classes),
    ]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    return net
