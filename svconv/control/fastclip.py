"""``fastclip_``: FastClip's projection steps on one layer's own weight, in place (Boroojeny et al. 2024).

Per step: PowerQR (``svconv.spectrum.power_qr_triples``, warm-started) gives the top-k singular triples
``(sigma_i, u_i, v_i)`` of the layer's linear part ``M``. Each ``sigma_i > c`` is an active constraint
``g_i(W) = <u_i, M(W) v_i> <= c``, a half-space holding every ``W`` with ``||M(W)|| <= c``. With
``G_i = dg_i/dW`` (``M`` is linear in ``W``, so ``g_i`` is too) the step

    W <- W - sum_i alpha_i G_i,    K alpha = sigma_active - c,    K_ij = <G_i, G_j>,

is the smallest change (Frobenius) that sets every active ``g_i`` to exactly ``c``: the projection onto
those hyperplanes. For k = 1 it is ``W - (sigma - c) G / ||G||^2``. For a dense layer ``G_i = u_i v_i^T``
are orthonormal, so one step with exact triples clips the top-k singular values to ``c`` and leaves every
other singular value and vector unchanged (the SVD clip); for a conv the kernel's support, padding,
stride, dilation and groups stay as they are and the other singular values move too, so the steps
repeat (each from a fresh PowerQR estimate) until the estimates are at most ``c``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from svconv.control.divide import layer_input_shape
from svconv.control.layer import exact_norm, full_kernel, controlled_kind, relative_change
from svconv.control.result import ControlResult
from svconv.spectrum._checks import check_count, check_positive
from svconv.spectrum.power_qr import SingularTriples, power_qr_triples


#: Relative margin, in units of the dtype's machine epsilon, within which an estimate equals the target.
ROUNDING_ULPS = 64


def project_top_k_(
    operator: Callable[[torch.Tensor], torch.Tensor], weight: torch.Tensor, triples: SingularTriples, max_sv: float
) -> int:
    """One FastClip projection of ``weight`` (a parameter of ``operator``) for the triples above ``max_sv``.

    ``triples``: PowerQR's of ``operator`` (right ``(k, *input_shape)``, left ``(k, *output_shape)``). Returns
    the number of active constraints (0: nothing above ``max_sv`` by more than rounding, ``weight`` untouched).
    """
    # A value the last step clipped to max_sv comes back a few ulps either side of it (how many depends on
    # the BLAS summation order, so on the thread count): within ROUNDING_ULPS it counts as at the target.
    limit = max_sv * (1 + ROUNDING_ULPS * torch.finfo(triples.values.dtype).eps)
    active = (triples.values > limit).nonzero().flatten()
    if active.numel() == 0:
        return 0
    V, U = triples.right[active], triples.left[active]
    excess = triples.values[active] - max_sv
    with torch.enable_grad():
        g = (U * operator(V)).flatten(1).sum(1)  # g_i = <u_i, f(v_i)>; the bias does not depend on W
        rows = [torch.autograd.grad(g[i], weight, retain_graph=i + 1 < len(g))[0].flatten() for i in range(len(g))]
    G = torch.stack(rows)
    # pinv: a rank-deficient K (repeated singular values) gets the least-norm step
    alpha = torch.linalg.pinv(G @ G.T, hermitian=True) @ excess.to(G.dtype)
    weight.sub_((alpha @ G).view_as(weight))
    return int(active.numel())


@torch.no_grad()
def clip_bn_(bn: nn.Module, max_sv: float) -> ControlResult:
    """Clip batch norm's eval-mode singular values to ``max_sv``, in place (FastClip-clip BN's batch norm step).

    Eval-mode BN is diagonal, ``scale_i = gamma_i / sqrt(running_var_i + eps)`` for every position of channel
    i, so its singular values are ``|scale_i|``; ``gamma_i`` is clamped to ``+-max_sv sqrt(running_var_i + eps)``
    (the direct per-channel clip of prior work, as the FastClip code does), which is the exact SVD clip.
    ``sigma_after``: the exact Lipschitz constant after it; ``passes``: 1 when a channel was clipped, else 0
    (as ``divide_bn_``); ``rel_change`` of gamma.
    """
    from svconv.layers import bn_lipschitz, bn_scale_shift

    max_sv = check_positive(max_sv, "max_sv")
    bn_scale_shift(bn)  # type and running-stat checks
    if bn.weight is None:
        raise ValueError("bn must have affine parameters (affine=True) to be clipped: its gamma is what moves")
    gamma = bn.weight
    before = gamma.detach().clone()
    limit = bn.running_var.detach().to(gamma.dtype).add(bn.eps).sqrt().mul(max_sv)
    clipped = bool((gamma.abs() > limit).any())
    gamma.copy_(torch.maximum(torch.minimum(gamma, limit), -limit))
    change = float((gamma - before).norm() / before.norm().clamp_min(torch.finfo(before.dtype).tiny))
    return ControlResult(bn_lipschitz(bn), float(max_sv), int(clipped), change)


@torch.no_grad()
def fastclip_(
    module: nn.Module,
    max_sv: float,
    input_size: int | Sequence[int] | None = None,
    *,
    n_iter: int = 1,
    power_iters: int = 1,
    k: int = 1,
    shift: float = 0.0,
    bn: nn.Module | None = None,
    state: dict | None = None,
    generator: torch.Generator | None = None,
    check: bool = False,
) -> ControlResult:
    """At most ``n_iter`` FastClip projection steps on one conv, TT or linear layer, in place.

    ``k``: the top-k singular values clipped per step (PowerQR's block size); ``power_iters`` warm PowerQR
    steps (with ``shift``, see ``svconv.spectrum.power_qr``) per projection; ``state`` (kept by the
    caller) holds the warm block ``(k, *input_shape)`` under ``"V"``. ``bn``: a batch norm that follows the
    conv; the operator controlled is then ``BN_eval o layer`` (FastClip-concat), still by steps on the
    conv's (TT: the core's) weight only. TT layers without ``bn``: frames orthogonalised, then the core
    alone. ``passes``: projection steps taken (the loop ends once every estimate is at most ``max_sv``);
    ``sigma_after``: None unless ``check`` (exact norm of the layer alone).
    """
    from svconv.layers import ConvBN

    max_sv = check_positive(max_sv, "max_sv")
    check_count(k, "k")
    state = {} if state is None else state
    kind = controlled_kind(module)
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
            V = state.get("V")
            if V is not None and tuple(V.shape) != (k, *shape):
                V = None
            triples = power_qr_triples(operator, shape, k=k, n_iter=power_iters, V=V, generator=generator, shift=shift)
            state["V"] = triples.right
            if not project_top_k_(operator, weight, triples, max_sv):
                break
            passes += 1
    finally:
        module.train(was)
    after = exact_norm(module, input_size) if check else None
    return ControlResult(after, float(max_sv), passes, relative_change(before, module))
