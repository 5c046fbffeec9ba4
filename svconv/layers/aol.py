"""Almost-orthogonal Lipschitz (AOL) layers (Prach & Lampert 2022): 1-Lipschitz by a diagonal rescaling.

Dense: ``W' = W diag(d)``, ``d_j = (sum_i |W^T W|_{ji})^(-1/2)``; then ``||W'||_2 <= 1`` (Schur test on
``D W^T W D``). Conv: ``W^T W`` becomes the full self-correlation of the kernel over space,
``R[j, i, q] = sum_o sum_p K[o, j, p] K[o, i, p + q]`` (``c_in x c_in x (2k-1)^d``), which is the Gram of
the convolution on the infinite grid; summing ``|R|`` over ``i`` and ``q`` bounds every row of the Gram.
Zero padding is that operator between an isometric embedding and a restriction, circular padding of at
most ``dil·(k-1)`` in total folds it onto the torus (``|a + b| <= |a| + |b|``), a stride only drops outputs,
a dilation spreads the taps without changing the sums, and groups are independent blocks: all stay 1-Lipschitz.

The rescaling is a ``torch.nn.utils.parametrize`` parametrisation of the weight (:class:`AOL`, registered
by :func:`aol`) on a plain ``nn.Conv1d/2d/3d`` or ``nn.Linear``: ``layer.weight`` is the rescaled weight,
``layer.parametrizations.weight.original`` the learnt one, and
``parametrize.remove_parametrizations(layer, "weight")`` leaves a plain layer with the rescaled weight.
:class:`AOLConv2d` and :class:`AOLLinear` are such layers with AOL's initialisation; they load the state
dicts of the earlier classes (keys ``weight``, ``bias``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from svconv.kinds import LayerKind
from svconv.spectrum._checks import as_tuple
from svconv.spectrum.conv_geometry import side_padding

EPS = 1e-12  # keeps zero columns finite; a larger denominator only lowers the norm
AOL_PADDING_MODES = ("zeros", "circular")
_CONV = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}


def aol_linear_scale(weight: torch.Tensor) -> torch.Tensor:
    """``d`` of shape ``(in_features,)`` for ``weight`` ``(out_features, in_features)`` (differentiable)."""
    gram = weight.T @ weight
    return (gram.abs().sum(dim=1) + EPS).rsqrt()


def aol_conv_scale(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``d`` of shape ``(c_in,)`` for a kernel ``(c_out, c_in / groups, k_1..k_d)``, d in {1, 2, 3}, from its
    self-correlation within each group (differentiable). Input channel ``j`` of group ``g`` is ``g · c_in/groups + j``."""
    conv = _CONV.get(weight.dim())
    if conv is None:
        raise ValueError(f"weight must be a conv kernel (c_out, c_in, k_1..k_d) with d in (1, 2, 3); got shape {tuple(weight.shape)}")
    c_out, c_in_g, *k = weight.shape
    og = c_out // groups
    # group g's kernel as c_in_g "images" with og channels; a grouped conv correlates them within each group
    kt = weight.view(groups, og, c_in_g, *k).transpose(1, 2)  # (groups, c_in_g, og, k...)
    images = kt.transpose(0, 1).reshape(c_in_g, groups * og, *k)
    corr = conv(images, kt.reshape(groups * c_in_g, og, *k), padding=[kj - 1 for kj in k], groups=groups)
    sums = corr.abs().view(c_in_g, groups, c_in_g, -1).sum(dim=(2, 3))  # (c_in_g, groups)
    return (sums.T.reshape(-1) + EPS).rsqrt()


class AOL(nn.Module):
    """The AOL rescaling as a parametrisation of a conv kernel or a linear weight: ``weight -> W diag(d)``.

    ``groups``: the conv's groups (the kernel is ``(c_out, c_in / groups, k...)``).
    """

    layer_kind = LayerKind.AOL

    def __init__(self, groups: int = 1):
        super().__init__()
        self.groups = groups

    def extra_repr(self) -> str:
        return f"groups={self.groups}"

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.dim() == 2:
            return weight * aol_linear_scale(weight).unsqueeze(0)
        d = aol_conv_scale(weight, self.groups)  # (c_in,) in group-major order
        c_out, c_in_g, *k = weight.shape
        scale = d.view(self.groups, 1, c_in_g, *([1] * len(k)))
        return (weight.view(self.groups, c_out // self.groups, c_in_g, *k) * scale).view_as(weight)


def aol(module: nn.Module) -> nn.Module:
    """Register the :class:`AOL` parametrisation on ``module.weight`` in place and return ``module``.

    ``module``: an ``nn.Linear`` or a non-transposed ``nn.Conv1d/2d/3d`` (any stride, dilation, groups) with
    ``zeros`` padding, or ``circular`` padding of at most ``dil·(k-1)`` in total per dimension (more would
    repeat outputs of the torus: no longer 1-Lipschitz).
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.padding_mode not in AOL_PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {AOL_PADDING_MODES}; got {module.padding_mode!r}")
        pads = side_padding(module.padding, module.kernel_size, module.dilation)
        if module.padding_mode == "circular" and any(
            l + r > dl * (k - 1) for (l, r), k, dl in zip(pads, module.kernel_size, module.dilation)
        ):
            raise ValueError(
                f"padding must be at most dilation·(kernel_size - 1) in total with circular padding; got {module.padding!r}"
            )
        groups = module.groups
    elif isinstance(module, nn.Linear):
        groups = 1
    else:
        raise TypeError(f"module must be an nn.Linear or nn.Conv1d/2d/3d; got {type(module).__name__}")
    parametrize.register_parametrization(module, "weight", AOL(groups))
    return module


def _load_old_weight(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """State dicts of the earlier AOL classes hold the learnt weight as ``weight``; it is now the original."""
    old, new = prefix + "weight", prefix + "parametrizations.weight.original"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


def _check_positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


class _AOLLayer:
    """What :class:`AOLLinear` and :class:`AOLConv2d` add to their PyTorch layer."""

    layer_kind = LayerKind.AOL
    weight: torch.Tensor
    bias: torch.Tensor | None

    def _parametrize(self, init: Callable[[torch.Tensor], Any]) -> None:
        """Initialise the learnt weight with ``init`` (bias zero), then register :class:`AOL` on it."""
        with torch.no_grad():
            init(self.weight)
            if self.bias is not None:
                self.bias.zero_()
        aol(self)
        self.register_load_state_dict_pre_hook(_load_old_weight)

    def rescaled_weight(self) -> torch.Tensor:
        """The weight actually applied (``self.weight``, the rescaled one): its layer has spectral norm <= 1."""
        return self.weight


class AOLLinear(_AOLLayer, nn.Linear):
    """1-Lipschitz ``nn.Linear`` with the :class:`AOL` parametrisation; ``W`` initialised orthogonal.
    Input ``(batch, in_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        _check_positive(in_features, "in_features")
        _check_positive(out_features, "out_features")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._parametrize(nn.init.orthogonal_)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (guaranteed by the rescaling). ``input_shape``: ``(in_features,)``."""
        if tuple(int(v) for v in input_shape) != (self.in_features,):
            raise ValueError(f"input_shape must be ({self.in_features},); got {tuple(input_shape)}")
        return 1.0


class AOLConv2d(_AOLLayer, nn.Conv2d):
    """1-Lipschitz ``nn.Conv2d`` with the :class:`AOL` parametrisation.

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups: as ``nn.Conv2d``.
        padding: per side; default ``dil·(k-1) // 2`` ("same" for odd kernels).
        padding_mode: ``'zeros'`` or ``'circular'`` (the copy maps of reflect/replicate padding are not contractions).
        bias: add a learnt bias.

    The kernel starts as the identity (``dirac_``), which AOL leaves unchanged. Input ``(batch, c_in, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        bias: bool = True,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        device=None,
        dtype=None,
    ):
        _check_positive(in_channels, "in_channels")
        _check_positive(out_channels, "out_channels")
        if padding_mode not in AOL_PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {AOL_PADDING_MODES}; got {padding_mode!r}")
        k, dil = as_tuple(kernel_size, 2, "kernel_size"), as_tuple(dilation, 2, "dilation")
        if padding is None:
            padding = tuple(dl * (kj - 1) // 2 for kj, dl in zip(k, dil))
        pads = (padding, padding) if isinstance(padding, int) else tuple(int(p) for p in padding)
        if len(pads) != 2 or any(p < 0 for p in pads):
            raise ValueError(f"padding must be a non-negative int or a pair of them; got {padding!r}")
        super().__init__(in_channels, out_channels, k, stride=stride, padding=pads, dilation=dil, groups=groups,
                         bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)  # fmt: skip
        self._parametrize(lambda w: nn.init.dirac_(w, groups))

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (guaranteed by the rescaling, any input size). ``input_shape``: ``(c_in, h, w)``."""
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"input_shape must be ({self.in_channels}, h, w); got {shape}")
        return 1.0
