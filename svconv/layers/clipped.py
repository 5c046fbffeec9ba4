"""A conv kept clipped to a target spectral norm while it trains: a ``torch.nn.utils.parametrize`` parametrisation.

The seed paper (Senderovich et al. 2022) trains with a projection every few steps: the weight moves freely
under the optimiser, and every ``every``-th training forward it is clipped back to within ``tol`` of
``max_sv`` (``svconv.spectrum.clip_to_target``, warm-started with the previous level). The gradient passes
straight through (the parametrisation is the identity between projections), as in the seed's training.

``clip_parametrize(conv, 1.0, input_size)`` registers it; ``export_clipped(conv)`` projects one last time and
leaves a plain layer with the clipped weight (as ``parametrize.remove_parametrizations`` does for
:mod:`svconv.layers.aol`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from svconv.spectrum._checks import as_tuple, check_count, check_positive


class ClipTo(nn.Module):
    """Identity on the weight, except that every ``every``-th call in training mode (with gradients on) first
    clips the weight in place to within ``tol`` of ``max_sv`` on the periodic grid ``grid`` with ``stride``.
    A call is an access of ``conv.weight``: once per forward of a plain conv (``parametrize.cached()`` keeps
    it once per step where a step reads the weight more often).

    ``level``: the clip level of the last projection (its warm start); ``projections``: how many were made.
    """

    def __init__(self, max_sv: float, grid: Sequence[int], stride: Sequence[int], every: int = 1, tol: float = 0.01, **options: Any):
        super().__init__()
        self.max_sv = check_positive(max_sv, "max_sv")
        self.grid, self.stride = tuple(grid), tuple(stride)
        self.every = check_count(every, "every")
        self.tol, self.options = tol, options
        self.level: float | None = None
        self.calls = 0
        self.projections = 0

    def extra_repr(self) -> str:
        return f"max_sv={self.max_sv}, grid={self.grid}, stride={self.stride}, every={self.every}, tol={self.tol}"

    @torch.no_grad()
    def project_(self, weight: torch.Tensor) -> float:
        """Clip ``weight`` in place; returns the norm achieved (``ClipResult.sigma``)."""
        from svconv.spectrum import clip_to_target

        res = clip_to_target(weight, self.grid, self.max_sv, self.stride, tol=self.tol, level=self.level, **self.options)
        weight.copy_(res.weight)
        self.level = res.level
        self.projections += 1
        return res.sigma

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            if self.calls % self.every == 0:
                self.project_(weight)
            self.calls += 1
        return weight


def clip_parametrize(conv: nn.Module, max_sv: float, input_size: int | Sequence[int], *, every: int = 1, tol: float = 0.01, **options: Any) -> nn.Module:
    """Register :class:`ClipTo` on ``conv.weight`` in place, clip the weight now, and return ``conv``.

    ``conv``: an ``nn.Conv2d``/``nn.Conv3d`` with groups 1 and dilation 1 (any stride, padding and padding
    mode); ``input_size``: the spatial size of its input (the grid follows ``svconv.spectrum.conv_geometry``:
    the exact norm for circular padding, an upper bound of the layer's own otherwise). ``options`` go to
    ``clip_to_target`` (``solver``, ``strategy``, ``guarantee``).
    """
    from svconv.spectrum.conv_geometry import conv_geometry

    if not isinstance(conv, (nn.Conv2d, nn.Conv3d)) or conv.groups != 1 or any(d != 1 for d in conv.dilation):
        raise ValueError(f"conv must be an nn.Conv2d or nn.Conv3d with groups=1 and dilation=1; got {conv!r}")
    if parametrize.is_parametrized(conv, "weight"):
        raise ValueError(f"conv.weight is already parametrised: {conv.parametrizations.weight}")
    geom = conv_geometry(conv, as_tuple(input_size, len(conv.kernel_size), "input_size"))
    p = ClipTo(max_sv, geom.grid, geom.stride, every, tol, **options)
    p.project_(conv.weight.data)
    # unsafe: skips registration's trial call of forward (which would count, and project, as a training
    # access); the identity keeps shape and dtype, the one thing that check guards
    parametrize.register_parametrization(conv, "weight", p, unsafe=True)
    return conv


def export_clipped(conv: nn.Module, project: bool = True) -> nn.Module:
    """Leave ``conv`` a plain layer whose weight is the clipped one, in place; returns ``conv``.

    ``project``: clip once more first (the weight may have drifted since the last projection).
    """
    if not parametrize.is_parametrized(conv, "weight") or not isinstance(conv.parametrizations.weight[0], ClipTo):
        raise ValueError("conv has no ClipTo parametrisation on its weight (register one with clip_parametrize)")
    if project:
        conv.parametrizations.weight[0].project_(conv.parametrizations.weight.original.data)
    parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    return conv
