"""Architectures by name: parsing, validation and construction.

Names: ``small-cnn``, ``lipconvnet-N`` (N = 5, 10, 15, ...), ``wrn-D-W`` (D = 6n + 4), ``vgg19``,
``resnet18``, ``aol-small``, ``aol-medium``, ``aol-large``, ``aol-fc``. Every model starts with
``Normalize`` (inputs stay in [0, 1]) and is built only from the structural modules of ``blocks.py``.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from svconv.models.blocks import Normalize

ARCH_PATTERNS = (
    "small-cnn",
    "lipconvnet-N",
    "wrn-D-W",
    "vgg19",
    "resnet18",
    "aol-small",
    "aol-medium",
    "aol-large",
    "aol-fc",
)
_FIXED = {"small-cnn", "vgg19", "resnet18", "aol-small", "aol-medium", "aol-large", "aol-fc"}
_KNOWN = (
    "small-cnn, lipconvnet-N (N a multiple of 5, e.g. lipconvnet-5, lipconvnet-20), "
    "wrn-D-W (D = 6n + 4, e.g. wrn-16-10), vgg19, resnet18, aol-small, aol-medium, aol-large, aol-fc"
)


@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture name: its family and, where the name carries them, depth and width."""

    name: str
    family: str  # small-cnn, lipconvnet, wrn, vgg19, resnet18, aol
    depth: int | None = None
    width: int | None = None


def parse_arch(name: str) -> ArchSpec:
    """Parse and validate an architecture name; ValueError listing the known names otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"arch must be a string, one of: {_KNOWN}; got {name!r}")
    if name in _FIXED:
        return ArchSpec(name, "aol" if name.startswith("aol-") else name)
    m = re.fullmatch(r"lipconvnet-(\d+)", name)
    if m:
        n = int(m.group(1))
        if n < 5 or n % 5:
            raise ValueError(f"arch {name!r}: LipConvNet-N needs N a positive multiple of 5; known: {_KNOWN}")
        return ArchSpec(name, "lipconvnet", depth=n)
    m = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    if m:
        d, w = int(m.group(1)), int(m.group(2))
        if d < 10 or (d - 4) % 6 or w < 1:
            raise ValueError(f"arch {name!r}: WRN-D-W needs D = 6n + 4 >= 10 and W >= 1; known: {_KNOWN}")
        return ArchSpec(name, "wrn", depth=d, width=w)
    raise ValueError(f"unknown arch {name!r}; known: {_KNOWN}")


def check_arch(name: str) -> str:
    """Return ``name`` if it names a known architecture; raise ValueError listing the known ones otherwise."""
    parse_arch(name)
    return name


def build_model(
    arch: str,
    num_classes: int,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    rank: int | None = None,
    method: str = "none",
) -> nn.Module:
    """Build architecture ``arch`` for inputs ``(batch, *input_shape)`` in [0, 1] and ``num_classes`` outputs.

    Args:
        arch: a name of :data:`ARCH_PATTERNS`.
        num_classes: >= 2.
        input_shape: ``(channels, height, width)`` of one input, e.g. ``(1, 28, 28)`` or ``(3, 32, 32)``.
        mean, std: per-channel normalisation applied first, inside the model.
        rank: TT rank of the convs (None: full). Plain convs are replaced by ``svconv.tt`` layers
            (the first conv is kept); LipConvNet uses SOC-TT layers.
        method: the SV-control method that will train it; checked for compatibility only.

    Returns:
        ``nn.Sequential(normalize=Normalize, net=...)`` with a ``tt_report`` attribute when ``rank`` is given
        (the report of ``svconv.tt.to_tt``; None for LipConvNet).
    """
    from svconv.methods import check_compatible  # methods import models: keep the cycle at call time

    spec = parse_arch(arch)
    check_compatible(method, arch, rank)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints; got {tuple(input_shape)}")
    c, h, w = shape
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need one value per input channel ({c}); got {len(mean)} and {len(std)}")
    net = _build_net(spec, c, (h, w), num_classes, rank)
    model = nn.Sequential(OrderedDict(normalize=Normalize(mean, std), net=net))
    model.tt_report = None
    if rank is not None and spec.family != "lipconvnet":
        from svconv.tt import to_tt

        model.tt_report = to_tt(model, rank, skip_first=True)
    return model


@functools.cache
def tt_rank_limit(arch: str) -> int | None:
    """The smallest TT rank that compresses no layer of ``arch`` (None: ``arch`` has no TT form).

    :func:`build_model` clamps a rank to each layer's channel counts and keeps a layer dense when the
    clamped ranks reach them: a conv (the first excepted, as ``to_tt(skip_first=True)``) stays dense when
    ``rank >= max(c_in, c_out)``, a LipConvNet SOC (the first and the classifier excepted) when ``rank >=
    channels``. So the limit is the widest such layer. Found from the dense model built on the meta device
    (no memory, no initialisation cost) for 3x32x32 inputs and 10 classes; the first layer, the only one
    that sees the input channels, is never compressed.
    """
    spec = parse_arch(arch)
    if spec.family == "aol":
        return None
    with torch.device("meta"):
        net = _build_net(spec, 3, (32, 32), 10, None)
    if spec.family == "lipconvnet":
        from svconv.layers import SOC

        widths = [m.channels for m in net.modules() if isinstance(m, SOC)][1:-1]
    else:
        convs = [m for m in net.modules() if type(m) in (nn.Conv2d, nn.Conv3d)][1:]
        widths = [max(m.in_channels, m.out_channels) for m in convs if m.groups == 1]
    return max(widths) if widths else None


def _build_net(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    if spec.family == "small-cnn":
        from svconv.models.small import small_cnn

        return small_cnn(c, num_classes)
    if spec.family == "wrn":
        from svconv.models.wrn import wide_resnet

        return wide_resnet(spec.depth, spec.width, c, num_classes)
    if spec.family == "vgg19":
        from svconv.models.vgg import vgg19

        return vgg19(c, num_classes)
    if spec.family == "resnet18":
        from svconv.models.resnet import resnet18

        return resnet18(c, num_classes)
    if spec.family == "lipconvnet":
        from svconv.models.lipconvnet import lipconvnet

        return lipconvnet(spec.depth, c, num_classes, size, rank=rank)
    from svconv.models.aol_nets import AOL_SIZES, aol_fc, aol_patchwise

    if spec.name == "aol-fc":
        return aol_fc(c, num_classes, size)
    return aol_patchwise(AOL_SIZES[spec.name], c, num_classes, size)
