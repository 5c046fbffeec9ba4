"""ResNet-18, the CIFAR variant (3x3 stem without max-pool; four stages of two basic blocks)."""

from __future__ import annotations

from torch import nn

from svconv.models.blocks import Residual


def _basic_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    body = nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    )
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential(Residual(body, shortcut), nn.ReLU())


def resnet18(in_channels: int, num_classes: int, width: int = 64) -> nn.Sequential:
    """ResNet-18 for small images; stage widths ``w, 2w, 4w, 8w`` (w = 64 standard, about 11.2 M weights)."""
    if width < 1:
        raise ValueError(f"width must be a positive int; got {width}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
    ]
    c = width
    for stage, stride in enumerate((1, 2, 2, 2)):
        c_out = width * 2**stage
        layers += [_basic_block(c, c_out, stride), _basic_block(c_out, c_out, 1)]
        c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
