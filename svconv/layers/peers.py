"""Other libraries' 1-Lipschitz layers, imported (never re-implemented) and wrapped as svconv layers.

The field's layers (Prach et al. 2024, "1-Lipschitz layers compared") from two libraries on the package
index, pinned in ``pyproject.toml``:

- ``aoc``: adaptive orthogonal convolutions (Boissin et al. 2025), ``orthogonium.layers.AdaptiveOrthoConv2d``
  (circular padding, explicit kernel), dense ``orthogonium.layers.OrthoLinear``;
- ``bcop``: BCOP x RKO (Li et al. 2019; Boissin et al. 2025), ``orthogonium.layers.conv.AOC.BcopRkoConv2d``
  (circular padding, explicit kernel), dense ``OrthoLinear`` (Björck, as BCOP's own dense layers);
- ``sll``: SDP-based Lipschitz layers in their residual form (Araujo et al. 2023),
  ``orthogonium.layers.conv.SLL.SDPBasedLipschitzResBlock`` ``x - 2 K^T relu(K x + b)`` with an
  AOL-rescaled ``K`` (zeros padding, square, nonlinear);
- ``cayley``: Cayley orthogonal convolutions (Trockman & Kolter 2021), ``orthogonium.legacy.cayley_ortho_conv.Cayley``
  (FFT on the input grid: circular; needs ``einops``). Its dense ``CayleyLinear`` allocates on CUDA in its
  constructor, so it is not offered;
- ``bjorck``: spectral normalisation then Björck orthonormalisation of the reshaped kernel, output scaled by
  the zeros-padding overlap factor (Anil et al. 2019; Serrurier et al. 2021), ``deel.torchlip.SpectralConv2d``
  (zeros padding) and ``SpectralLinear``.

:class:`PeerLayer` wraps one such layer: ``layer_kind`` ``PEER`` (a ``layers`` row, never controlled) and
``lipschitz_bound(input_shape)``: the library's claim (1 for all five), raised to the certified norm of the
plain ``nn.Conv2d`` / ``nn.Linear`` that the layer exports to when it has an explicit kernel (aoc, bcop,
bjorck and the dense layers), so that a claim the float32 orthogonalisation misses by rounding never
enters a certificate. SLL and Cayley have no plain form: their bound is the claim, checked by the tests.

A library that does not import disables only its methods: :func:`peer_problem` says which package to
install, and building one of its layers raises ``ImportError`` with that text.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from svconv.kinds import LayerKind

#: pip requirement of each library, as pinned in pyproject.toml.
PINS = {"orthogonium": "orthogonium==0.0.4", "deel-torchlip": "deel-torchlip==1.0.5", "einops": "einops==0.8.2"}


@dataclass(frozen=True)
class Peer:
    """One method's layers: where they come from and how to build them.

    ``conv(c_in, c_out, kernel)`` and ``linear(in_features, out_features)`` build the library's layers
    (stride 1, 'same' output size; ``linear`` None: none offered); ``square``: the conv needs
    ``c_in == c_out``; ``export(layer)``: the plain ``nn.Conv2d`` / ``nn.Linear`` computing the same map,
    None where the layer has no explicit kernel; ``padding``: what the conv does at the border.
    """

    name: str
    summary: str
    packages: tuple[str, ...]  # keys of PINS
    imports: tuple[str, ...]  # modules that must import
    padding: str  # circular | zeros
    conv: Callable[[int, int, int], nn.Module]
    linear: Callable[[int, int], nn.Module] | None
    export: Callable[[nn.Module], nn.Module] | None
    square: bool = False


def _plain_conv(layer: nn.Module) -> nn.Conv2d:
    """An ``nn.Conv2d`` with ``layer``'s hyperparameters and its current kernel and bias (public attributes)."""
    weight = layer.weight.detach()
    conv = nn.Conv2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
        layer.groups, layer.bias is not None, layer.padding_mode, device=weight.device, dtype=weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(weight)
        if layer.bias is not None:
            conv.bias.copy_(layer.bias.detach())
    return conv


def _plain_linear(layer: nn.Module) -> nn.Linear:
    weight = layer.weight.detach()
    lin = nn.Linear(layer.in_features, layer.out_features, layer.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if layer.bias is not None:
            lin.bias.copy_(layer.bias.detach())
    return lin


def _export(layer: nn.Module) -> nn.Module:
    """orthogonium's explicit-kernel convs and dense layers: a plain layer from their ``weight``."""
    return _plain_linear(layer) if isinstance(layer, nn.Linear) else _plain_conv(layer)


def _torchlip_export(layer: nn.Module) -> nn.Module:
    return layer.vanilla_export()  # deel-torchlip's own export to a plain layer


def _aoc(c_in: int, c_out: int, k: int) -> nn.Module:
    from orthogonium.layers import AdaptiveOrthoConv2d

    return AdaptiveOrthoConv2d(c_in, c_out, k, stride=1, padding="same", padding_mode="circular")


def _bcop(c_in: int, c_out: int, k: int) -> nn.Module:
    from orthogonium.layers.conv.AOC import BcopRkoConv2d

    return BcopRkoConv2d(c_in, c_out, k, stride=1, padding="same", padding_mode="circular")


def _ortho_linear(n_in: int, n_out: int) -> nn.Module:
    from orthogonium.layers import OrthoLinear

    return OrthoLinear(n_in, n_out)


def _sll(c_in: int, c_out: int, k: int) -> nn.Module:
    from orthogonium.layers.conv.SLL import SDPBasedLipschitzResBlock

    return SDPBasedLipschitzResBlock(c_in, inner_dim_factor=1, kernel_size=k)


def _cayley(c_in: int, c_out: int, k: int) -> nn.Module:
    from orthogonium.legacy.cayley_ortho_conv import Cayley

    return Cayley(c_in, c_out, k)


def _bjorck(c_in: int, c_out: int, k: int) -> nn.Module:
    from deel.torchlip import SpectralConv2d

    return SpectralConv2d(c_in, c_out, k, padding=k // 2)


def _spectral_linear(n_in: int, n_out: int) -> nn.Module:
    from deel.torchlip import SpectralLinear

    return SpectralLinear(n_in, n_out)


#: The peers' methods by name, in the order of listings.
PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("aoc", "adaptive orthogonal convs (orthogonium; Boissin et al. 2025)", ("orthogonium",), ("orthogonium.layers",),
             "circular", _aoc, _ortho_linear, _export),
        Peer("bcop", "BCOP x RKO orthogonal convs (orthogonium; Li et al. 2019)", ("orthogonium",),
             ("orthogonium.layers.conv.AOC",), "circular", _bcop, _ortho_linear, _export),
        Peer("sll", "SDP-based Lipschitz residual layers (orthogonium; Araujo et al. 2023)", ("orthogonium",),
             ("orthogonium.layers.conv.SLL",), "zeros", _sll, None, None, square=True),
        Peer("cayley", "Cayley orthogonal convs (orthogonium.legacy; Trockman & Kolter 2021)", ("orthogonium", "einops"),
             ("orthogonium.legacy.cayley_ortho_conv",), "circular", _cayley, None, None),
        Peer("bjorck", "Björck-orthonormalised convs (deel-torchlip; Anil et al. 2019)", ("deel-torchlip",),
             ("deel.torchlip",), "zeros", _bjorck, _spectral_linear, _torchlip_export),
    )
}  # fmt: skip


def peer(name: str) -> Peer:
    """The :class:`Peer` called ``name``; ValueError listing the known ones otherwise."""
    if name not in PEERS:
        raise ValueError(f"peer method must be one of {', '.join(PEERS)}; got {name!r}")
    return PEERS[name]


def peer_problem(name: str) -> str | None:
    """Why method ``name``'s layers cannot be built here (a library does not import), or None."""
    spec = peer(name)
    for module in spec.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pins = " ".join(PINS[p] for p in spec.packages)
            return (
                f"method {name!r} needs {' and '.join(spec.packages)}, which does not import here "
                f"({type(exc).__name__}: {exc}); install it: pip install {pins}"
            )
    return None


def _available(name: str) -> Peer:
    spec = peer(name)
    problem = peer_problem(name)
    if problem:
        raise ImportError(problem)
    return spec


class PeerLayer(nn.Module):
    """One layer of another library (``self.layer``) as an svconv layer: kind ``PEER`` and a certified bound.

    ``claim``: the Lipschitz constant the library guarantees (deel-torchlip's ``k_coef_lip``, else 1).
    Shapes are the wrapped layer's: ``(b, c_in, h, w) -> (b, c_out, h, w)`` or ``(b, in) -> (b, out)``.
    """

    layer_kind = LayerKind.PEER

    def __init__(self, method: str, layer: nn.Module, kernel_size: int | None = None):
        super().__init__()
        self.method = peer(method).name
        self.layer = layer
        self.claim = float(getattr(layer, "k_coef_lip", 1.0))
        self.kernel_size = None if kernel_size is None else (kernel_size, kernel_size)
        self.stride = None if kernel_size is None else 1

    def extra_repr(self) -> str:
        return f"method={self.method!r}, claim={self.claim:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def export(self) -> nn.Module | None:
        """The plain ``nn.Conv2d`` / ``nn.Linear`` computing the same map now (None: no explicit kernel)."""
        fn = PEERS[self.method].export
        return None if fn is None else fn(self.layer)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """``max(claim, certified norm of the exported plain layer)`` on one input ``input_shape`` (inf when
        that kernel is not finite); the claim where there is no plain layer (SLL, Cayley).

        The certified norm is the overlap bound :func:`unrolled_bound` when that is within 1e-5 of the claim
        (Björck's convs: one SVD, where the exact norm of a 1024-channel 3x3 conv on a padded grid takes a
        minute of CPU), else the exact one (``conv_layer_bound``, or :func:`folded_circular_norm`)."""
        from svconv.spectrum.bounds import conv_layer_bound, folded_circular_norm

        plain = self.export()
        if plain is None:
            return self.claim
        if not bool(torch.isfinite(plain.weight).all()):
            return math.inf  # a diverged orthogonalisation certifies nothing
        with torch.no_grad():
            if isinstance(plain, nn.Linear):
                norm = float(torch.linalg.matrix_norm(plain.weight.double(), 2))
            else:
                norm = unrolled_bound(plain)
                if not norm <= self.claim * (1 + 1e-5):
                    exact_norm, exact = conv_layer_bound(plain, input_shape)
                    if not exact:
                        exact_norm = min(exact_norm, folded_circular_norm(plain, input_shape[1:]) or exact_norm)
                    norm = min(norm, exact_norm)
        return max(self.claim, norm) if math.isfinite(norm) else math.inf  # max(claim, nan) would be the claim


def unrolled_bound(conv: nn.Conv2d) -> float:
    """``sqrt(k_1 k_2) ||W_mat||_2`` (``W_mat``: the ``c_out x c_in k_1 k_2`` unrolled kernel), a certified
    bound on a stride-1, ungrouped conv with zeros or circular padding: each output pixel is ``W_mat`` times
    the patch it reads, and an input pixel lies in at most ``k_1 k_2`` patches (Cisse et al. 2017;
    deel-torchlip's Björck convs are scaled by its inverse). inf for another conv (reflect and replicate
    padding copy border pixels into more patches). Float64, with the rounding margin."""
    from svconv.spectrum.bounds import ROUNDING

    plain = tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1) and conv.groups == 1
    if not plain or conv.padding_mode not in ("zeros", "circular"):
        return math.inf
    w = conv.weight.detach().double()
    norm = float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2))
    return math.sqrt(w.shape[2] * w.shape[3]) * norm * (1 + ROUNDING)


def peer_conv(method: str, c_in: int, c_out: int, kernel: int) -> PeerLayer:
    """Method ``method``'s conv layer ``(b, c_in, n, n) -> (b, c_out, n, n)``, k x k kernel, stride 1, wrapped.

    ImportError saying what to install when its library does not import; ValueError for a square-only
    layer (SLL) given ``c_in != c_out``.
    """
    spec = _available(method)
    if spec.square and c_in != c_out:
        raise ValueError(f"method {method!r} has square layers only (residual form); got c_in={c_in}, c_out={c_out}")
    return PeerLayer(method, spec.conv(c_in, c_out, kernel), kernel)


def peer_linear(method: str, in_features: int, out_features: int) -> PeerLayer:
    """Method ``method``'s dense layer ``(b, in_features) -> (b, out_features)``, wrapped; ValueError if it has none."""
    spec = _available(method)
    if spec.linear is None:
        offered = ", ".join(n for n, p in PEERS.items() if p.linear is not None)
        raise ValueError(f"method {method!r} offers no dense layer here; methods with one: {offered}")
    return PeerLayer(method, spec.linear(in_features, out_features))
