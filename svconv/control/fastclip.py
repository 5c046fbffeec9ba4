"""``fastclip_``: FastClip's projection steps on one layer's own weight, in place (Boroojeny et al. 2024).

Per step: PowerQR with k = 1 (power iteration on ``M^T M`` by autodiff of the input) gives the top
singular triple ``(sigma, u, v)`` of the layer's linear part ``M``; if ``sigma > c``,

    G = d <u, M(W) v> / dW,    W <- W - (sigma - c) / ||G||^2 * G,

the projection onto the half-space ``{W : <u, M(W) v> <= c}``, which holds every ``W`` with
``||M(W)|| <= c`` (``M`` is linear in ``W``, so the step sets ``<u, M v>`` to exactly ``c``). The
kernel's support, padding, stride, dilation and groups stay as they are.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from svconv.control.divide import layer_input_shape
from svconv.control.layer import exact_norm, full_kernel, layer_kind, relative_change
from svconv.control.result import ControlResult
from svconv.spectrum._checks import check_positive


def top_singular_triple(
    module: Callable[[torch.Tensor], torch.Tensor],
    input_shape: tuple[int, ...],
    n_iter: int,
    v: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sigma, u, v)``: top singular value and unit singular vectors of ``M x = module(x) - module(0)``.

    ``v`` (shape ``input_shape``) warm-starts the ``n_iter`` power steps; ``u`` has the output's shape
    (one sample, no batch dimension).
    """
    from svconv.spectrum import power_iteration
    from svconv.spectrum.linear_map import LinearPart

    sigma, v = power_iteration(module, input_shape, n_iter=n_iter, v=v, generator=generator)
    Mv = LinearPart(module, input_shape).apply(v.unsqueeze(0))[0]
    u = Mv / Mv.norm().clamp_min(torch.finfo(Mv.dtype).tiny)
    return sigma, u, v


@torch.no_grad()
def fastclip_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    n_iter: int = 1,
    power_iters: int = 1,
    bn: nn.Module | None = None,
    state: dict | None = None,
    generator: torch.Generator | None = None,
    check: bool = False,
) -> ControlResult:
    """At most ``n_iter`` FastClip projection steps on one conv, TT or linear layer, in place.

    ``power_iters`` warm power steps per projection; ``state`` (kept by the caller) holds the warm vector
    under ``"v"``. ``bn``: a batch norm that follows the conv; the operator controlled is then
    ``BN_eval o layer`` (FastClip-concat), still by steps on the conv's (TT: the core's) weight only.
    TT layers without ``bn``: frames orthogonalised, then the core alone. ``passes``: projection steps
    taken (a step is skipped, and the loop ends, once the estimate is at most ``max_sv``);
    ``sigma_after``: None unless ``check`` (exact norm of the layer alone).
    """
    from svconv.layers import ConvBN

    max_sv = check_positive(max_sv, "max_sv")
    state = {} if state is None else state
    kind = layer_kind(module)
    if kind == "tt":
        module.orthogonalize_()
    before = full_kernel(module).clone()
    weight = module.core.weight if kind == "tt" else module.weight
    if bn is not None and kind != "linear":
        operator, shape = ConvBN(module, bn), layer_input_shape(module, input_size)  # BN in its eval form
    elif kind == "tt":
        operator, shape = module.core, layer_input_shape(module.core, input_size)
    else:
        operator, shape = module, layer_input_shape(module, input_size)
    passes = 0
    was = module.training
    module.eval()
    try:
        for _ in range(n_iter):
            v = state.get("v")
            if v is not None and tuple(v.shape) != shape:
                v = None
            sigma, u, state["v"] = top_singular_triple(operator, shape, power_iters, v, generator)
            if sigma <= max_sv:
                break
            with torch.enable_grad():
                y = operator(state["v"].unsqueeze(0))[0]
                (g,) = torch.autograd.grad((u * y).sum(), weight)
            weight.sub_(g, alpha=float((sigma - max_sv) / g.pow(2).sum().clamp_min(torch.finfo(g.dtype).tiny)))
            passes += 1
    finally:
        module.train(was)
    after = exact_norm(module, input_size) if check else None
    return ControlResult(after, float(max_sv), passes, relative_change(before, module))
