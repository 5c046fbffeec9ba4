"""VGG-19 with batch norm, the CIFAR variant (16 3x3 convs, 5 max-pools, one linear layer)."""

from __future__ import annotations

from torch import nn

# Channel multiples of the base width; "M" is a 2x2 max-pool.
VGG19_CFG = (1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M")


def vgg19(in_channels: int, num_classes: int, width: int = 64) -> nn.Sequential:
    """VGG-19-BN for small images: ``conv3x3-BN-ReLU`` blocks, max-pools, global pooling, ``Linear(8w, classes)``.

    Pools round up (``ceil_mode``), so 28x28 inputs reach 1x1 like 32x32 ones (28-14-7-4-2-1).
    ``width`` is the first block's channel count (64 in the standard network).
    """
    if width < 1:
        raise ValueError(f"width must be a positive int; got {width}")
    layers: list[nn.Module] = []
    c = in_channels
    for item in VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            c_out = int(item) * width
            layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
