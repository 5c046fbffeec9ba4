"""Certified upper bounds on the L2 Lipschitz constant of layers and of whole networks.

A network is walked structurally: ``nn.Sequential`` multiplies the bounds of its children,
``svconv.models.blocks.Residual`` adds those of its body and shortcut (identity: 1), and every
other module is a leaf bounded by :func:`layer_lipschitz_bound`. Modules with a
``lipschitz_bound(input_shape) -> float`` method (the svconv TT, SOC and AOL layers, custom
activations such as MaxMin) are leaves that bound themselves. Bounds hold for the model in eval
mode (batch norm with its running statistics, dropout off). Spectral computations run in float64.

Convolutions: ``svconv.spectrum.conv_layer_bound``, the one rule for conv bounds (``docs/design.md``,
"Bounds of conv layers"): exact for circular padding of ``dilation * (k - 1)`` in all on a grid the
stride divides, ``||pad|| · ||periodic conv on a large enough grid||`` otherwise.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.kinds import BN_TYPES, CONV_TYPES
from svconv.layers.batchnorm import bn_lipschitz
from svconv.models.blocks import Normalize, Residual
from svconv.spectrum.bounds import conv_layer_bound

# Largest |derivative| of each activation (slopes of piecewise-linear ones; for the smooth ones the
# maximum over a 1e-5 grid on [-10, 10], rounded up).
_ONE_LIPSCHITZ = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Tanh, nn.Softsign, nn.Softplus, nn.CELU, nn.Softshrink, nn.Tanhshrink, nn.Identity, nn.Flatten, nn.Unflatten, nn.PixelShuffle,
    nn.PixelUnshuffle, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ChannelShuffle,
)  # fmt: skip
_SMOOTH = {nn.Sigmoid: 0.25, nn.GELU: 1.1291, nn.SiLU: 1.0999, nn.Mish: 1.0885, nn.Hardswish: 1.5}


def _activation_bound(module: nn.Module) -> float | None:
    if isinstance(module, _ONE_LIPSCHITZ):
        return 1.0
    for cls, value in _SMOOTH.items():
        if isinstance(module, cls):
            return value
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope))
    if isinstance(module, nn.PReLU):
        return max(1.0, float(module.weight.detach().abs().max()))
    if isinstance(module, nn.ELU):
        return max(1.0, float(module.alpha))
    return None


# ---------------------------------------------------------------- pooling


def _avg_pool_matrix_1d(n: int, k: int, s: int, p: int, ceil_mode: bool, include_pad: bool, device) -> torch.Tensor:
    """The ``(out, n)`` matrix of a 1-D average pooling (built by pooling the identity)."""
    eye = torch.eye(n, dtype=torch.float64, device=device).unsqueeze(1)
    cols = F.avg_pool1d(eye, k, s, p, ceil_mode=ceil_mode, count_include_pad=include_pad)
    return cols.squeeze(1).T


def _adaptive_windows(n: int, o: int) -> list[tuple[int, int]]:
    return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]


def _per_dim(value, d: int) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value] * d


def pool_lipschitz_bound(module: nn.Module, input_shape: Sequence[int]) -> float | None:
    """Bound of a pooling layer, or None if ``module`` is not one handled here.

    Average pools are linear and separable (a Kronecker product of 1-D averaging matrices, the same
    per channel): their exact norm is the product of the 1-D norms. A max pool changes each output
    by at most the largest input change in its window, so its bound is the square root of the
    largest number of windows holding one input pixel (1 for non-overlapping windows).
    """
    spatial = list(input_shape[1:])
    d = len(spatial)
    dev = torch.device("cpu")
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        k, s, p = (_per_dim(v, d) for v in (module.kernel_size, module.stride or module.kernel_size, module.padding))
        override = getattr(module, "divisor_override", None)
        include = module.count_include_pad or override is not None
        norm = 1.0
        for j in range(d):
            A = _avg_pool_matrix_1d(spatial[j], k[j], s[j], p[j], module.ceil_mode, include, dev)
            norm *= float(torch.linalg.matrix_norm(A, 2))
        if override is not None:
            norm *= math.prod(k) / override
        return norm
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        out = [o if o is not None else n for o, n in zip(_per_dim(module.output_size, d), spatial)]
        norm = 1.0
        for n, o in zip(spatial, out):
            eye = torch.eye(n, dtype=torch.float64).unsqueeze(1)
            norm *= float(torch.linalg.matrix_norm(F.adaptive_avg_pool1d(eye, o).squeeze(1).T, 2))
        return norm
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        k, s, dl = (_per_dim(v, d) for v in (module.kernel_size, module.stride or module.kernel_size, module.dilation))
        windows = math.prod(min(kj, math.ceil((dj * (kj - 1) + 1) / sj)) for kj, sj, dj in zip(k, s, dl))
        return math.sqrt(windows)
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        out = [o if o is not None else n for o, n in zip(_per_dim(module.output_size, d), spatial)]
        windows = 1
        for n, o in zip(spatial, out):
            count = [0] * n
            for a, b in _adaptive_windows(n, o):
                for i in range(a, b):
                    count[i] += 1
            windows *= max(count)
        return math.sqrt(windows)
    return None


# ---------------------------------------------------------------- layers and networks


def has_own_bound(module: nn.Module) -> bool:
    """Whether ``module`` bounds itself through a ``lipschitz_bound(input_shape)`` method."""
    return callable(getattr(module, "lipschitz_bound", None))


def layer_lipschitz_bound(module: nn.Module, input_shape: Sequence[int], method: str = "exact") -> float:
    """Certified upper bound on the L2 Lipschitz constant of one layer in eval mode.

    Args:
        module: a leaf layer (see the module docstring for the supported kinds) or any module with a
            ``lipschitz_bound(input_shape)`` method.
        input_shape: one input without the batch dimension, e.g. ``(c_in, h, w)`` (``(features,)``
            for a Linear).
        method: for convolutions, ``"exact"`` (exact norm of the periodic operator used) or ``"gram"``.

    Raises:
        ValueError naming the module's type when no bound is known for it.
    """
    input_shape = tuple(int(v) for v in input_shape)
    if has_own_bound(module):
        return float(module.lipschitz_bound(input_shape))
    if isinstance(module, Normalize):
        return float(1 / module.std.detach().double().min())
    if isinstance(module, CONV_TYPES):
        return conv_layer_bound(module, input_shape, method)[0]
    if isinstance(module, nn.Linear):
        return float(torch.linalg.matrix_norm(module.weight.detach().double(), 2))
    if isinstance(module, BN_TYPES):
        return bn_lipschitz(module)
    bound = _activation_bound(module)
    if bound is None:
        bound = pool_lipschitz_bound(module, input_shape)
    if bound is None:
        raise ValueError(
            f"no Lipschitz bound for module {type(module).__name__}: supported are Normalize, convolutions, "
            "Linear, batch norm, pooling, ReLU-like activations, Flatten, Dropout, Identity, and any module "
            "with a lipschitz_bound(input_shape) method"
        )
    return bound


LeafFn = Callable[[str, nn.Module, tuple[int, ...]], float]


def walk_bound(model: nn.Module, input_shape: Sequence[int], leaf: LeafFn) -> float:
    """Compose per-leaf values ``leaf(name, module, input_shape)`` by the Sequential / Residual rules.

    Sequential: product; Residual: ``body + (shortcut or 1)``; a module with its own
    ``lipschitz_bound`` is a leaf even if it has children.
    """
    from svconv.models.shapes import input_shapes

    shapes = input_shapes(model, input_shape)
    names = {id(m): n for n, m in model.named_modules()}

    def bound(m: nn.Module) -> float:
        name = names[id(m)]
        if has_own_bound(m):
            return leaf(name, m, shapes[name])
        if isinstance(m, nn.Sequential):
            return math.prod(bound(c) for c in m)
        if isinstance(m, Residual):
            return bound(m.body) + (1.0 if m.shortcut is None else bound(m.shortcut))
        if name not in shapes:
            raise ValueError(f"module {name or '<model>'} ({type(m).__name__}) was not called in the forward pass")
        # a weight parametrisation (e.g. AOL's) is a child module, but not a layer of the forward pass
        if any(child != "parametrizations" for child, _ in m.named_children()) and not isinstance(m, CONV_TYPES):
            raise ValueError(
                f"cannot bound container {name or '<model>'} ({type(m).__name__}): models must be built "
                "from nn.Sequential, Residual and leaf layers, or the container must define lipschitz_bound"
            )
        return leaf(name, m, shapes[name])

    return float(bound(model))


def network_lipschitz_bound(model: nn.Module, input_shape: Sequence[int], method: str = "exact") -> float:
    """Certified upper bound on the L2 Lipschitz constant of ``model`` (inputs to logits) in eval mode.

    The product of per-layer bounds along ``nn.Sequential``, ``Lip(body) + Lip(shortcut)`` at each
    ``Residual``, leaves by :func:`layer_lipschitz_bound`. ``input_shape``: one input without the
    batch dimension, e.g. ``(3, 32, 32)``. Inputs are in [0, 1] (normalisation inside the model
    contributes ``1 / min(std)``).
    """
    with torch.no_grad():
        return walk_bound(model, input_shape, lambda _n, m, shape: layer_lipschitz_bound(m, shape, method))


def leaf_lipschitz_bounds(model: nn.Module, input_shape: Sequence[int], method: str = "exact") -> dict[str, float]:
    """``{module name: bound}`` for every leaf that :func:`network_lipschitz_bound` composes."""
    out: dict[str, float] = {}

    def leaf(name: str, m: nn.Module, shape: tuple[int, ...]) -> float:
        out[name] = layer_lipschitz_bound(m, shape, method)
        return out[name]

    with torch.no_grad():
        walk_bound(model, input_shape, leaf)
    return out
