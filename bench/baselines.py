"""Baselines for the exact singular values, measured beside ``svconv.spectrum`` in the same run.

- :func:`numpy_singular_values`: the seed's formula as its Appendix B.1 writes it (Senderovich et al. 2022): zero-pad the
  kernel to the input size, gather the polyphase components with a Python loop over the ``s^d``
  offsets, a full complex ``numpy.fft.fftn``, then ``numpy.linalg.svd`` (values only) on every frequency.
  Written for PyTorch's layout ``(c_out, c_in, k...)``, the components concatenated along the input
  channels (the seed's TensorFlow layout had them on the other axis). CPU only.
- :func:`torch_singular_values`: the plain PyTorch route: full complex ``torch.fft.fftn`` over the whole
  grid and ``torch.linalg.svdvals`` per frequency, on the weight's device.

``svconv.spectrum.conv_singular_values`` differs by the half-spectrum real FFT, the polyphase split by a
reshape, and eigenvalues of the smaller Gram matrix instead of an SVD. All three return the same multiset.

Both are registered (``svconv.methods.registry.register``) as the bench estimators ``exact-numpy`` and
``exact-torch``.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

from svconv.methods.estimators import Exact
from svconv.methods.flops import svd_baseline_flops
from svconv.methods.registry import register
from svconv.spectrum._checks import check_geometry


def numpy_singular_values(
    weight: np.ndarray | torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int] = 1
) -> np.ndarray:
    """All singular values of the periodic convolution (unsorted), the seed's NumPy way.

    Args:
        weight: ``(c_out, c_in, k_1..k_d)``, d in {2, 3}; a tensor is moved to a NumPy array first.
        input_size, stride: as in ``conv_singular_values`` (the stride divides the input size).

    Returns:
        ``(prod(m) * min(c_out, c_in * prod(s)),)`` float array, ``m = n / s``.
    """
    if isinstance(weight, torch.Tensor):
        d, n, s, m = check_geometry(weight, input_size, stride)
        weight = weight.detach().cpu().numpy()
    else:
        d, n, s, m = check_geometry(torch.from_numpy(np.asarray(weight)), input_size, stride)
    c_out, c_in, *k = weight.shape
    pad = [(0, 0), (0, 0)] + [(0, nj - kj) for nj, kj in zip(n, k)]
    kernel_pad = np.pad(weight, pad)
    transforms = np.zeros((c_out, c_in, int(np.prod(s)), *m), dtype=weight.dtype)
    for idx, offset in enumerate(itertools.product(*[range(sj) for sj in s])):
        sl = tuple(slice(f, None, sj) for f, sj in zip(offset, s))
        transforms[:, :, idx] = kernel_pad[(slice(None), slice(None), *sl)]
    transforms = np.fft.fftn(transforms, axes=tuple(range(3, 3 + d)))
    transforms = transforms.reshape(c_out, -1, *m)
    # (c_out, c_in * s^d, m...) -> (m..., c_out, c_in * s^d): one matrix per frequency
    per_freq = np.moveaxis(transforms, (0, 1), (-2, -1))
    return np.linalg.svd(per_freq, compute_uv=False).ravel()


def torch_singular_values(
    weight: torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int] = 1
) -> torch.Tensor:
    """All singular values of the periodic convolution (unsorted), by full complex FFT and ``svdvals``.

    Same arguments and count as :func:`numpy_singular_values`; stays on ``weight``'s device and dtype.
    """
    d, n, s, m = check_geometry(weight, input_size, stride)
    c_out, c_in, *k = weight.shape
    pad: list[int] = []
    for kj, nj in zip(reversed(k), reversed(n)):
        pad += [0, nj - kj]
    w = torch.nn.functional.pad(weight.detach(), pad)
    comps = torch.stack(
        [
            w[(slice(None), slice(None), *[slice(f, None, sj) for f, sj in zip(offset, s)])]
            for offset in itertools.product(*[range(sj) for sj in s])
        ],
        dim=2,
    )
    spec = torch.fft.fftn(comps, dim=tuple(range(3, 3 + d))).reshape(c_out, -1, *m)
    per_freq = spec.movedim((0, 1), (-2, -1))
    return torch.linalg.svdvals(per_freq).flatten()


def _kernel_and_geometry(module: torch.nn.Module, input_shape: Sequence[int]):
    """The kernel the exact routines see (a TT layer's orthogonalised core) and its ``(grid, stride)``."""
    from svconv.methods.base import grid_and_stride

    if hasattr(module, "core"):
        module.orthogonalize_()
        module = module.core
    return module.weight.detach(), grid_and_stride(module, input_shape[1:])


@register
class ExactNumpy(Exact):
    """The seed's NumPy formula (:func:`numpy_singular_values`) as a bench estimator."""

    name = "exact-numpy"
    order = 2
    summary = "the seed's NumPy formula: full complex FFT, SVD per frequency"
    bench_layer = "baseline"
    bench_model = None
    orthogonalises = False

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return svd_baseline_flops(c_out, c_in, size, stride)

    @classmethod
    def layer_value(cls, module, input_shape, iters, k, generator) -> np.ndarray:
        weight, (grid, stride) = _kernel_and_geometry(module, input_shape)
        return numpy_singular_values(weight.cpu().numpy(), grid, stride)


@register
class ExactTorch(ExactNumpy):
    """Full complex FFT and ``torch.linalg.svdvals`` (:func:`torch_singular_values`) as a bench estimator."""

    name = "exact-torch"
    order = 3
    summary = "plain PyTorch: full complex FFT, svdvals per frequency"

    @classmethod
    def layer_value(cls, module, input_shape, iters, k, generator) -> torch.Tensor:
        weight, (grid, stride) = _kernel_and_geometry(module, input_shape)
        return torch_singular_values(weight, grid, stride)
