"""Architectures by name: parsing, validation and construction, from one dict registry (:data:`MODELS`).

Names: ``small-cnn``, ``lipconvnet-N`` (N = 5, 10, 15, ...; ``lipconvnet-N-W``: W channels in the first
block instead of 32), ``wrn-D-W`` (D = 6n + 4), ``vgg19``,
``resnet18``, ``aol-small``, ``aol-medium``, ``aol-large``, ``aol-fc`` (``aol-fc-W``: W units per layer), ``aol-std``, ``aol-conv``. Every model
starts with ``Normalize`` (inputs stay in [0, 1]; its mean and std follow the family's paper,
``svconv.models.preprocessing``) and is built only from the structural modules of ``blocks.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from svconv.models.blocks import Normalize
from svconv.models.preprocessing import normalization

@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture name: its family and, where the name carries them, depth and width."""

    name: str
    family: str  # small-cnn, lipconvnet, wrn, vgg19, resnet18, aol
    depth: int | None = None
    width: int | None = None
    layers: str | None = None  # LipConvNet: another library's layers instead of SOC (svconv.layers.peers)


@dataclass(frozen=True)
class LearningRates:
    """A family's default initial learning rate per optimiser kind (``TrialConfig.lr`` None): ``sgd`` for
    sgd and sgd-nesterov, ``adam`` for adam. Measured so that a short trial on mnist5k learns
    (``svconv.metrics.learned``); docs/design.md has the numbers."""

    sgd: float
    adam: float


Builder = Callable[[ArchSpec, int, tuple[int, int], int, "int | None"], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """One architecture (or family of names) of :data:`MODELS`.

    ``family``: what methods and reports group by; ``build(spec, in_channels, (h, w), num_classes, rank)``
    returns the network after ``Normalize``; ``pattern``: for parametrised names, a regex whose groups are
    ``depth`` (and ``width``), with ``check(depth, width)`` returning an error text or None; ``tt``: whether
    a TT rank may be given (``rank``: ``svconv.tt.to_tt`` after building, unless the builder takes it);
    ``lr``: the family's default learning rates (:func:`default_lr`).
    """

    family: str
    build: Builder
    pattern: str | None = None
    check: Callable[[int, "int | None"], "str | None"] | None = None
    tt: bool = True
    builder_takes_rank: bool = False
    preprocessing: str = "standardize"  # svconv.models.preprocessing.PREPROCESSING: the family's paper's inputs
    lr: LearningRates = LearningRates(sgd=0.1, adam=1e-3)  # every entry of MODELS names its family's rates


def _small_cnn(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.small import small_cnn

    return small_cnn(c, num_classes)


def _wrn(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.wrn import wide_resnet

    return wide_resnet(spec.depth, spec.width, c, num_classes, conv_shortcut=spec.name.endswith("-conv"))


def _vgg19(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.vgg import vgg19

    return vgg19(c, num_classes)


def _resnet18(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.resnet import resnet18

    return resnet18(c, num_classes)


def _lipconvnet(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.lipconvnet import INIT_CHANNELS, lipconvnet
    from svconv.models.peer_nets import peer_lipconvnet

    if spec.layers is not None:
        return peer_lipconvnet(spec.layers, spec.depth, c, num_classes, size, init_channels=spec.width or INIT_CHANNELS)
    return lipconvnet(spec.depth, c, num_classes, size, rank=rank, init_channels=spec.width or INIT_CHANNELS)


def _aol(spec: ArchSpec, c: int, size: tuple[int, int], num_classes: int, rank: int | None) -> nn.Module:
    from svconv.models.aol_nets import AOL_SIZES, aol_conv, aol_fc, aol_patchwise, aol_std

    if spec.name == "aol-fc" or spec.name.startswith("aol-fc-"):
        return aol_fc(c, num_classes, size, width=spec.width)
    if spec.name in ("aol-std", "aol-conv"):
        return (aol_std if spec.name == "aol-std" else aol_conv)(c, num_classes, size)
    return aol_patchwise(AOL_SIZES[spec.name], c, num_classes, size)


def _check_lipconvnet(depth: int, width: int | None) -> str | None:
    ok = depth >= 5 and depth % 5 == 0 and (width is None or width >= 1)
    return None if ok else "LipConvNet-N(-W) needs N a positive multiple of 5 and W >= 1"


def _check_aol_fc(depth: int | None, width: int | None) -> str | None:
    return None if width >= 2 and width % 2 == 0 else "AOL-FC-W needs an even W >= 2 (MaxMin pairs the units)"


def _check_wrn(depth: int, width: int | None) -> str | None:
    return None if depth >= 10 and (depth - 4) % 6 == 0 and width >= 1 else "WRN-D-W needs D = 6n + 4 >= 10 and W >= 1"


#: The AOL architectures (Prach & Lampert 2022; svconv.models.aol_nets).
AOL_ARCHS = ("aol-small", "aol-medium", "aol-large", "aol-fc", "aol-std", "aol-conv")

#: Default learning rates per family (``ModelEntry.lr``), each measured on mnist5k (1-2 epochs, 2 CPU threads;
#: docs/design.md): small-cnn SGD 0.1 gives 82 % after one epoch (0.01: 38 %); LipConvNet SGD 0.1 is Singla &
#: Feizi's and gives 73 % after two (SOC-TT r8, λ 1e3: 68 %); Adam 3e-3 gives 64 %; AOL collapses to chance with
#: Adam at 3e-3 and learns at 1e-4 (Prach & Lampert train with SGD); the BN nets take the usual SGD 0.1.
LR_SMALL_CNN = LearningRates(sgd=0.1, adam=1e-3)
LR_LIPCONVNET = LearningRates(sgd=0.1, adam=3e-3)
LR_AOL = LearningRates(sgd=0.1, adam=1e-4)
LR_BN_NETS = LearningRates(sgd=0.1, adam=1e-3)

#: Architectures by name (or name pattern): adding one is one entry here and its builder.
MODELS: dict[str, ModelEntry] = {
    "small-cnn": ModelEntry("small-cnn", _small_cnn, lr=LR_SMALL_CNN),
    # the SOC reference code's inputs: centred, one std for all channels (Singla & Feizi 2021)
    "lipconvnet-N": ModelEntry(
        "lipconvnet", _lipconvnet, r"lipconvnet-(?P<depth>\d+)(?:-(?P<width>\d+))?", _check_lipconvnet, builder_takes_rank=True,
        preprocessing="center-scale", lr=LR_LIPCONVNET,
    ),  # fmt: skip
    # parameter-free shortcuts as the reference code's WRN-16-10; "-conv": 1x1 conv shortcuts
    "wrn-D-W": ModelEntry("wrn", _wrn, r"wrn-(?P<depth>\d+)-(?P<width>\d+)(?:-conv)?", _check_wrn, lr=LR_BN_NETS),
    # a narrower AOL-FC (W units per layer instead of 4 h w): the demo's AOL net
    "aol-fc-W": ModelEntry("aol", _aol, r"aol-fc-(?P<width>\d+)", _check_aol_fc, tt=False, preprocessing="none", lr=LR_AOL),
    "vgg19": ModelEntry("vgg19", _vgg19, lr=LR_BN_NETS),
    "resnet18": ModelEntry("resnet18", _resnet18, lr=LR_BN_NETS),
    # AOL rescales the full kernel: no TT form; its reference code feeds the images in [0, 1] unchanged
    **{name: ModelEntry("aol", _aol, tt=False, preprocessing="none", lr=LR_AOL) for name in AOL_ARCHS},
}
ARCH_PATTERNS = tuple(MODELS)
_KNOWN = (
    "small-cnn, lipconvnet-N (N a multiple of 5, e.g. lipconvnet-5, lipconvnet-20), lipconvnet-N-W (first block "
    "W channels instead of 32, e.g. lipconvnet-5-8), aol-fc-W (W units per layer, e.g. aol-fc-256), "
    "wrn-D-W (D = 6n + 4, e.g. wrn-16-10; wrn-D-W-conv: 1x1 conv shortcuts), vgg19, resnet18, " + ", ".join(AOL_ARCHS)
)


def arch_entry(name: str) -> tuple[ArchSpec, ModelEntry]:
    """Parse and validate an architecture name: its :class:`ArchSpec` and :data:`MODELS` entry."""
    if not isinstance(name, str):
        raise ValueError(f"arch must be a string, one of: {_KNOWN}; got {name!r}")
    entry = MODELS.get(name)
    if entry is not None and entry.pattern is None:
        return ArchSpec(name, entry.family), entry
    for entry in MODELS.values():
        m = re.fullmatch(entry.pattern, name) if entry.pattern else None
        if m:
            depth, width = (None if g is None else int(g) for g in (m.groupdict().get(k) for k in ("depth", "width")))
            problem = entry.check(depth, width) if entry.check else None
            if problem:
                raise ValueError(f"arch {name!r}: {problem}; known: {_KNOWN}")
            return ArchSpec(name, entry.family, depth=depth, width=width), entry
    raise ValueError(f"unknown arch {name!r}; known: {_KNOWN}")


def default_lr(arch: str, optimizer: str) -> float:
    """The initial learning rate of ``arch``'s family for ``optimizer`` (sgd, sgd-nesterov, adam): what a
    trial without an ``lr`` trains at (``ModelEntry.lr``). ValueError names a bad arch or optimiser."""
    rates = arch_entry(arch)[1].lr
    if optimizer in ("sgd", "sgd-nesterov"):
        return rates.sgd
    if optimizer == "adam":
        return rates.adam
    raise ValueError(f"optimizer must be one of sgd, sgd-nesterov, adam; got {optimizer!r}")


def arch_preprocessing(name: str) -> str:
    """The input preprocessing convention of architecture ``name`` (``svconv.models.preprocessing``)."""
    return arch_entry(name)[1].preprocessing


def parse_arch(name: str) -> ArchSpec:
    """Parse and validate an architecture name; ValueError listing the known names otherwise."""
    return arch_entry(name)[0]


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
    layers: str | None = None,
) -> nn.Module:
    """Build architecture ``arch`` for inputs ``(batch, *input_shape)`` in [0, 1] and ``num_classes`` outputs.

    Which SV-control method may train it is the caller's check (``svconv.methods.check_compatible``; a
    ``TrialConfig`` makes it on construction).

    Args:
        arch: a name of :data:`ARCH_PATTERNS`.
        num_classes: >= 2.
        input_shape: ``(channels, height, width)`` of one input, e.g. ``(1, 28, 28)`` or ``(3, 32, 32)``.
        mean, std: the dataset's per-channel statistics; ``Normalize`` applies them first, inside the model, as
            the family's paper does (``ModelEntry.preprocessing``, :func:`arch_preprocessing`).
        rank: TT rank of the convs (None: full). Plain convs are replaced by ``svconv.tt`` layers
            (the first conv is kept); LipConvNet uses SOC-TT layers; AOL architectures take none.
        layers: LipConvNet only: build it from another library's layers instead of SOC, one of
            ``svconv.layers.peers.PEERS`` (aoc, bcop, sll, cayley, bjorck); no rank then.

    Returns:
        ``nn.Sequential(normalize=Normalize, net=...)`` with a ``tt_report`` attribute when ``rank`` is given
        (the report of ``svconv.tt.to_tt``: layers kept dense, ranks capped; None for LipConvNet, whose
        builder decides per layer, ``svconv.models.lipconvnet.soc_tt_ranks``).
    """
    spec, entry = arch_entry(arch)
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be None (no TT) or an int >= 1; got {rank!r}")
    if rank is not None and not entry.tt:
        raise ValueError(f"arch {arch!r} has no TT variant (AOL rescales the full kernel); use rank=None, got {rank}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints; got {tuple(input_shape)}")
    c, h, w = shape
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need one value per input channel ({c}); got {len(mean)} and {len(std)}")
    if layers is not None:
        from svconv.layers.peers import peer

        peer(layers)  # a known name, or ValueError listing them
        if spec.family != "lipconvnet" or rank is not None:
            raise ValueError(f"layers={layers!r} builds lipconvnet-N without a rank; got arch {arch!r}, rank {rank!r}")
        spec = dataclasses.replace(spec, layers=layers)
    net = entry.build(spec, c, (h, w), num_classes, rank)
    model = nn.Sequential(OrderedDict(normalize=Normalize(*normalization(entry.preprocessing, mean, std)), net=net))
    model.tt_report = None
    if rank is not None and not entry.builder_takes_rank:
        from svconv.tt import to_tt

        model.tt_report = to_tt(model, rank, skip_first=True)
    return model


@functools.cache
def tt_rank_limit(arch: str) -> int | None:
    """The smallest TT rank that compresses no layer of ``arch`` (None: ``arch`` has no TT form).

    :func:`build_model` keeps a layer dense where its TT form would not have fewer weights, and TT weights
    grow with the rank: a conv (the first excepted, as ``to_tt(skip_first=True)``) compresses up to
    ``svconv.tt.compressing_rank``, a LipConvNet layer up to ``svconv.models.lipconvnet.rank_limit``. Found
    from the dense model built on the meta device (no memory, no initialisation cost) for 3x32x32 inputs
    and 10 classes.
    """
    spec, entry = arch_entry(arch)
    if not entry.tt:
        return None
    if spec.family == "lipconvnet":
        from svconv.models.lipconvnet import INIT_CHANNELS, rank_limit

        return rank_limit(spec.depth, init_channels=spec.width or INIT_CHANNELS)
    from svconv.tt import compressing_rank

    with torch.device("meta"):
        net = entry.build(spec, 3, (32, 32), 10, None)
    convs = [m for m in net.modules() if type(m) in (nn.Conv2d, nn.Conv3d)][1:]
    best = max([compressing_rank(m.in_channels, m.out_channels, m.weight[0, 0].numel()) for m in convs if m.groups == 1], default=0)
    return best + 1 if best else None
