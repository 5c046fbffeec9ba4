"""What every TT-structured layer shares: the 1x1 frames ``U`` (c_in -> r1) and ``V`` (r2 -> c_out) around a core,
the orthogonality loss over them (Senderovich et al. 2022, eq. 11) and the parameter counts behind the compression ratio.
"""

from __future__ import annotations

import torch
from torch import nn

from svconv.kinds import LayerKind


def parse_ranks(rank: int | tuple[int, int], in_channels: int, out_channels: int) -> tuple[int, int]:
    """``(r1, r2)`` from an int or a pair, clamped to ``(in_channels, out_channels)`` (orthonormal frames need it)."""
    if isinstance(rank, bool) or not (
        isinstance(rank, int)
        or (isinstance(rank, (tuple, list)) and len(rank) == 2 and all(isinstance(r, int) and not isinstance(r, bool) for r in rank))
    ):
        raise ValueError(f"rank must be a positive int or a pair (r1, r2) of positive ints; got {rank!r}")
    r1, r2 = (rank, rank) if isinstance(rank, int) else tuple(rank)
    if r1 < 1 or r2 < 1:
        raise ValueError(f"rank must be a positive int or a pair (r1, r2) of positive ints; got {rank!r}")
    return min(r1, in_channels), min(r2, out_channels)


def tt_weights(in_channels: int, out_channels: int, kernel_volume: int, r1: int, r2: int) -> int:
    """Kernel weights of a TT conv ``U (r1 x c_in) -> core (r2 x r1 x K) -> V (c_out x r2)``, biases excluded
    (Senderovich et al. 2022: the compression ratio is ``c_out c_in K`` over this)."""
    return in_channels * r1 + r1 * r2 * kernel_volume + r2 * out_channels


def check_channels(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


class TTFrames:
    """Mixin for ``nn.Module`` layers ``x -> V(core(U(x)))`` whose ``U`` and ``V`` are 1x1 convs without groups.

    Subclasses define ``U``, ``V`` and ``core`` submodules and :meth:`dense_params` (the parameter count of
    the dense kernel the layer stands for).
    """

    layer_kind = LayerKind.TT
    U: nn.Module
    V: nn.Module
    core: nn.Module

    def frame_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U, V)`` as matrices: ``U`` is ``(r1, c_in)``, ``V`` is ``(c_out, r2)`` (with the graph)."""
        return self.U.weight.flatten(1), self.V.weight.flatten(1)

    def frame_errors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U U^T - I, V^T V - I)``: ``(r1, r1)`` and ``(r2, r2)``, differentiable."""
        U, V = self.frame_matrices()
        eye1 = torch.eye(U.shape[0], dtype=U.dtype, device=U.device)
        eye2 = torch.eye(V.shape[1], dtype=V.dtype, device=V.device)
        return U @ U.T - eye1, V.T @ V - eye2

    def frames_orthogonal(self, atol: float = 1e-5) -> bool:
        """Whether ``U`` has orthonormal rows and ``V`` orthonormal columns, every entry of the errors within ``atol``."""
        with torch.no_grad():
            eu, ev = self.frame_errors()
            return bool(eu.abs().max() <= atol and ev.abs().max() <= atol)

    def frame_norms(self) -> tuple[float, float]:
        """Spectral norms ``(||U||_2, ||V||_2)`` in float64 (both 1 for orthonormal frames)."""
        with torch.no_grad():
            U, V = self.frame_matrices()
            return (
                float(torch.linalg.matrix_norm(U.double(), ord=2)),
                float(torch.linalg.matrix_norm(V.double(), ord=2)),
            )

    @property
    def ranks(self) -> tuple[int, int]:
        """``(r1, r2)`` as built: ``U``'s output channels and ``V``'s input channels."""
        return int(self.U.weight.shape[0]), int(self.V.weight.shape[1])

    @property
    def rank(self) -> int:
        """``max(r1, r2)``: the requested rank after capping to the layer (the ``rank`` of its ``layers`` row)."""
        return max(self.ranks)

    def tt_params(self) -> int:
        """Weights of ``U``, ``core`` and ``V`` (biases excluded)."""
        return sum(int(m.weight.numel()) for m in (self.U, self.core, self.V))

    def dense_params(self) -> int:
        raise NotImplementedError


def orthogonality_loss(model: nn.Module) -> torch.Tensor:
    """Eq. 11 of Senderovich et al. 2022 with the normalisation of the authors' code (``orthogonal_loss`` in
    ``src/SOTT.py`` of github.com/WhiteTeaDragon/practical_svd_conv, and ``loss += (k / shapes) * loss_``):
    ``sum_l (||U_l U_l^T - I||_F^2 + ||V_l^T V_l - I||_F^2) / sum_l 2 r2_l^2`` over the TT layers ``l``.

    So ``lam`` is on the scale of that code's ``--orthogonal-k``. Both squared errors of every layer are
    summed before one division (a layer with more frame entries weighs more), and the divisor counts
    ``2 r2^2`` per layer as that code does (``V``'s rank for both frames). Covers every :class:`TTFrames`
    module of ``model`` (``TTConv2d``/``TTConv3d``, ``SOCTT``), ``model`` itself included. Differentiable in
    the frames; a 0-d zero (on the model's device) when there is none.
    """
    total, count = [], 0
    for m in model.modules():
        if isinstance(m, TTFrames):
            eu, ev = m.frame_errors()
            total.append(eu.pow(2).sum() + ev.pow(2).sum())
            count += 2 * ev.shape[0] ** 2
    if not total:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None, dtype=p.dtype if p is not None else None)
    return torch.stack(total).sum() / count
