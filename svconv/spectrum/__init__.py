"""Singular values of convolutional layers: exact (any stride), clipping, bounds and estimates.

Exact routines take the kernel ``(c_out, c_in, k_1..k_d)`` and the periodic operator of docs/design.md;
estimators take any module that is linear plus a constant.
"""

from svconv.spectrum.bounds import CONV_BOUND_METHODS, conv_layer_bound, conv_operator_bound
from svconv.spectrum.clip import clip_conv_singular_values
from svconv.spectrum.clip_target import CLIP_SOLVERS, CLIP_STRATEGIES, ClipResult, clip_to_target
from svconv.spectrum.dense import dense_operator
from svconv.spectrum.conv_geometry import ConvGeometry, conv_geometry, dilate_kernel, padding_norm, side_padding
from svconv.spectrum.exact import conv_singular_values, conv_spectral_norm, periodic_conv, transfer_matrices
from svconv.spectrum.gram import gram_iteration_bound
from svconv.spectrum.power import power_iteration
from svconv.spectrum.power_qr import SingularTriples, power_qr, power_qr_triples

__all__ = [
    "CONV_BOUND_METHODS",
    "ConvGeometry",
    "conv_geometry",
    "conv_layer_bound",
    "conv_operator_bound",
    "dilate_kernel",
    "padding_norm",
    "side_padding",
    "conv_singular_values",
    "conv_spectral_norm",
    "clip_conv_singular_values",
    "clip_to_target",
    "ClipResult",
    "CLIP_SOLVERS",
    "CLIP_STRATEGIES",
    "gram_iteration_bound",
    "power_iteration",
    "power_qr",
    "power_qr_triples",
    "SingularTriples",
    "dense_operator",
    "periodic_conv",
    "transfer_matrices",
]
