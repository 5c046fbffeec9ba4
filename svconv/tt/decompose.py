"""Turning dense convolutions into TT layers: HOSVD of one conv, replacement across a model, compression."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from svconv.tt.conv import TTConv2d, TTConv3d
from svconv.tt.frames import TTFrames, parse_ranks, tt_weights

CONV_TYPES = (nn.Conv2d, nn.Conv3d)


def useful_ranks(rank: int | tuple[int, int], in_channels: int, out_channels: int, kernel_volume: int) -> tuple[int, int]:
    """The ranks ``(r1, r2)`` a TT form of a ``(c_out, c_in, K)`` kernel gets for ``rank``: each capped at the
    most it can use, so that a larger rank would only add weights.

    ``r1`` is the rank of the input-channel unfolding ``(c_in, c_out K)`` and ``r2`` of the output-channel one
    ``(c_out, c_in K)``, so ``r1 <= min(c_in, c_out K)`` and ``r2 <= min(c_out, c_in K)``; the core's own
    unfoldings add ``r1 <= r2 K`` and ``r2 <= r1 K`` (a 1x1 kernel: ``r1 = r2 <= min(c_in, c_out)``).
    """
    r1, r2 = parse_ranks(rank, in_channels, out_channels)
    k = kernel_volume
    r1, r2 = min(r1, out_channels * k), min(r2, in_channels * k)
    r1 = min(r1, r2 * k)
    return r1, min(r2, r1 * k)  # one pass suffices: lowering r2 to r1 K keeps r1 <= r2 K


def compressing_rank(in_channels: int, out_channels: int, kernel_volume: int) -> int:
    """The largest int rank whose TT form (:func:`useful_ranks`) has fewer weights than the dense kernel; 0 if
    none. The TT weights grow with the rank, so every rank above it keeps the layer dense in :func:`to_tt`."""
    dense = in_channels * out_channels * kernel_volume
    best = 0
    for r in range(1, max(in_channels, out_channels) + 1):
        if tt_weights(in_channels, out_channels, kernel_volume, *useful_ranks(r, in_channels, out_channels, kernel_volume)) >= dense:
            break
        best = r
    return best


def from_conv(conv: nn.Module, rank: int | tuple[int, int]) -> tuple[TTConv2d | TTConv3d, float]:
    """Decompose an ``nn.Conv2d``/``nn.Conv3d`` into a TT layer by truncated HOSVD of its two channel unfoldings,
    at the ranks :func:`useful_ranks` gives (whether or not that is smaller than the conv: :func:`to_tt` decides).

    ``U``: the top ``r1`` left singular vectors of the input-channel unfolding ``(c_in, c_out·K)``, as rows;
    ``V``: the top ``r2`` of the output-channel unfolding ``(c_out, c_in·K)``; core ``C = V^T ×_out W ×_in U^T``.
    Frames come out orthonormal. Stride, padding, dilation, padding mode, bias, device and dtype are kept.

    Returns:
        ``(layer, error)``: ``error = ||W - W_tt||_F / ||W||_F`` (0 for a zero kernel, NaN on the meta
        device, where only the shapes are built), exact 0 up to rounding
        at full rank; the HOSVD bound ``error^2 <= (sum of the discarded squared singular values of both
        unfoldings) / ||W||_F^2`` holds.
    """
    if not isinstance(conv, CONV_TYPES):
        raise TypeError(f"conv must be an nn.Conv2d or nn.Conv3d; got {type(conv).__name__}")
    if conv.groups != 1:
        raise ValueError(f"conv must have groups=1 to be TT-decomposed; got groups={conv.groups}")
    c_out, c_in = conv.out_channels, conv.in_channels
    r1, r2 = useful_ranks(rank, c_in, c_out, conv.weight[0, 0].numel())
    W = conv.weight.detach()
    Wd = W.to(torch.float64)
    Wf = Wd.flatten(2)  # (c_out, c_in, K)
    u_in = torch.linalg.svd(Wf.transpose(0, 1).reshape(c_in, -1), full_matrices=False)[0]
    v_out = torch.linalg.svd(Wf.reshape(c_out, -1), full_matrices=False)[0]
    U = u_in[:, :r1].T  # (r1, c_in)
    V = v_out[:, :r2]  # (c_out, r2)
    C = torch.einsum("ob,oik,ai->bak", V, Wf, U)
    approx = torch.einsum("ob,bak,ai->oik", V, C, U)
    norm = Wf.norm()
    if Wf.is_meta:  # shapes only (weight counts, e.g. the compression of a model built on the meta device)
        error = math.nan
    else:
        error = float((Wf - approx).norm() / norm) if norm > 0 else 0.0
    cls = TTConv2d if isinstance(conv, nn.Conv2d) else TTConv3d
    layer = cls(
        c_in, c_out, conv.kernel_size, (r1, r2), stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        device=W.device, dtype=W.dtype,
    )
    with torch.no_grad():
        layer.U.weight.copy_(U.reshape(layer.U.weight.shape))
        layer.V.weight.copy_(V.reshape(layer.V.weight.shape))
        layer.core.weight.copy_(C.reshape(layer.core.weight.shape))
        if conv.bias is not None:
            layer.V.bias.copy_(conv.bias)
    layer.train(conv.training)
    return layer, error


def _kernel_params(m: nn.Module) -> tuple[int, int]:
    """``(dense-equivalent kernel weights, actual kernel weights)`` of one layer (biases excluded)."""
    if isinstance(m, TTFrames):
        return m.dense_params(), m.tt_params()
    w = getattr(m, "weight", None)
    if isinstance(w, torch.Tensor) and w.dim() >= 4:  # convs, SOC, AOL convs: their own dense kernel
        return int(w.numel()), int(w.numel())
    return 0, 0


def compression_ratio(layer_or_model: nn.Module) -> float:
    """Dense kernel weights ÷ actual kernel weights (biases excluded).

    One TT layer: ``c_out c_in K / (c_in r1 + r1 r2 K + r2 c_out)`` (K the kernel volume); SOC-TT likewise
    against the full SOC. A model: the sums over its conv-like layers (TT, SOC-TT, plain convs, SOC, AOL
    convs; the convs inside a TT layer count as part of it); 1.0 for a model without any.
    """
    if not isinstance(layer_or_model, nn.Module):
        raise TypeError(f"layer_or_model must be an nn.Module; got {type(layer_or_model).__name__}")
    dense = actual = 0
    inside: list[str] = []
    for name, m in layer_or_model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(m, TTFrames):
            inside.append(name)
            if name == "":
                return m.dense_params() / m.tt_params()
        a, b = _kernel_params(m)
        dense += a
        actual += b
    return dense / actual if actual else 1.0


@dataclass
class TTEntry:
    """One conv considered by :func:`to_tt`. ``status``: ``replaced`` or ``kept`` (with ``reason``).

    ``requested``: the ranks asked for; ``ranks``: the ranks of the built TT layer (None when kept), below
    ``requested`` when :func:`useful_ranks` capped them to the channel counts or unfolding ranks (``capped``).
    """

    name: str
    status: str
    reason: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    ranks: tuple[int, int] | None
    dense_params: int
    params: int
    compression: float
    error: float | None
    requested: tuple[int, int] | None = None

    @property
    def capped(self) -> bool:
        return self.ranks is not None and self.requested is not None and self.ranks != self.requested


@dataclass
class TTReport:
    """What :func:`to_tt` did: one entry per conv, and the totals over them (kernel weights, biases excluded)."""

    rank: int | tuple[int, int]
    entries: list[TTEntry] = field(default_factory=list)

    @property
    def replaced(self) -> list[str]:
        return [e.name for e in self.entries if e.status == "replaced"]

    @property
    def kept(self) -> list[str]:
        return [e.name for e in self.entries if e.status == "kept"]

    @property
    def capped(self) -> dict[str, tuple[int, int]]:
        """Replaced convs whose ranks were capped below the requested ones: name -> ranks built."""
        return {e.name: e.ranks for e in self.entries if e.capped}

    @property
    def dense_params(self) -> int:
        return sum(e.dense_params for e in self.entries)

    @property
    def params(self) -> int:
        return sum(e.params for e in self.entries)

    @property
    def compression(self) -> float:
        """Total dense conv weights ÷ total after replacement (1.0 when nothing was considered)."""
        return self.dense_params / self.params if self.params else 1.0

    def rows(self) -> list[dict]:
        return [asdict(e) for e in self.entries]

    def __str__(self) -> str:
        lines = [f"to_tt(rank={self.rank}): {len(self.replaced)} replaced, {len(self.kept)} kept, "
                 f"compression {self.compression:.2f}x ({self.dense_params} -> {self.params} conv weights)"]
        for e in self.entries:
            ranks = "" if e.ranks is None else f" ranks={e.ranks}" + (f" (capped from {e.requested})" if e.capped else "")
            what = f"error={e.error:.3g}" if e.status == "replaced" else e.reason
            lines.append(
                f"  {e.name}: {e.status} {e.in_channels}->{e.out_channels} k={e.kernel_size}{ranks} "
                f"{e.compression:.2f}x {what}"
            )
        return "\n".join(lines)


def to_tt(model: nn.Module, rank: int | tuple[int, int], skip_first: bool = True) -> TTReport:
    """Replace every ``nn.Conv2d``/``nn.Conv3d`` of ``model`` in place by its TT layer (:func:`from_conv`),
    never adding weights.

    Ranks are capped per conv by :func:`useful_ranks` (channel counts and unfolding ranks; the report keeps
    both the requested and the built ranks). Kept as plain convs: the first conv in module order when
    ``skip_first`` (the stem, usually 3 input channels), convs with ``groups != 1``, and convs whose TT form
    at the capped ranks has at least as many weights as the conv (e.g. a 160->320 1x1 conv at rank 192:
    ranks (160, 160), 102,400 weights for 51,200). Convs already inside a TT layer are left alone, so
    calling it twice changes nothing the second time.

    Returns:
        A :class:`TTReport` listing every conv considered, what became of it and the compression.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    parse_ranks(rank, 1 << 30, 1 << 30)  # validate before touching the model
    if isinstance(model, CONV_TYPES):
        raise ValueError("model must be a container of convs (e.g. nn.Sequential), not a conv itself; use from_conv")
    report = TTReport(rank=rank)
    inside: list[str] = []
    convs: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(m, TTFrames):
            inside.append(name)
        elif type(m) in CONV_TYPES:
            convs.append((name, m))
    for idx, (name, conv) in enumerate(convs):
        c_in, c_out = conv.in_channels, conv.out_channels
        k = tuple(conv.kernel_size)
        dense = int(conv.weight.numel())
        requested = (rank, rank) if isinstance(rank, int) else tuple(rank)
        kv = math.prod(k)
        ranks = useful_ranks(rank, c_in, c_out, kv)
        tt = tt_weights(c_in, c_out, kv, *ranks)
        reason = ""
        if skip_first and idx == 0:
            reason = "first conv (skip_first=True)"
        elif conv.groups != 1:
            reason = f"groups={conv.groups} (TT needs groups=1)"
        elif tt >= dense:
            reason = f"TT form not smaller: {tt} weights at ranks {ranks} >= {dense}"
        if reason:
            report.entries.append(TTEntry(name, "kept", reason, c_in, c_out, k, None, dense, dense, 1.0, None, requested))
            continue
        layer, error = from_conv(conv, rank)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
        params = layer.tt_params()
        report.entries.append(
            TTEntry(name, "replaced", "", c_in, c_out, k, layer.ranks, dense, params, dense / params, error, requested)
        )
    return report
