"""Wide residual networks WRN-d-w (Zagoruyko & Komodakis 2016), the CIFAR variant used by Gouk et al.

Pre-activation basic blocks ``BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3``; three groups of
``(d - 4) / 6`` blocks with ``16w, 32w, 64w`` channels and strides 1, 2, 2; a 1x1 conv shortcut where the
shape changes; ``BN-ReLU``, global average pooling and a linear head. WRN-16-10 has about 17.1 M weights.
"""

from __future__ import annotations

from torch import nn

from svconv.models.blocks import Residual


def _conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def _block(c_in: int, c_out: int, stride: int, dropout: float) -> nn.Module:
    body = [_conv3(c_in, c_out, stride), nn.BatchNorm2d(c_out), nn.ReLU()]
    if dropout > 0:
        body.append(nn.Dropout(dropout))
    body.append(_conv3(c_out, c_out))
    if c_in == c_out and stride == 1:
        # Identity shortcut: the pre-activation is part of the residual branch.
        return Residual(nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), *body))
    # Projection shortcut: as in the reference code, it sees the pre-activated input, so the
    # pre-activation sits before the residual split.
    shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), Residual(nn.Sequential(*body), shortcut))


def wide_resnet(depth: int, width: int, in_channels: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """WRN-``depth``-``width``; ``depth = 6 n + 4``. Input ``(b, in_channels, h, w)`` with h, w >= 4."""
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
            layers.append(_block(c_in, widths[group + 1], stride if i == 0 else 1, dropout))
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
