"""Lipschitz layers: AOL (Prach & Lampert 2022; ``aol(layer)`` parametrises any conv or linear layer),
SOC and SOC-TT (Singla & Feizi 2021; SOC-TT: Senderovich et al. 2022), MaxMin, invertible downsampling and
batch-norm helpers (certified conv bounds: ``svconv.spectrum.bounds``).

Every layer class here has ``lipschitz_bound(input_shape) -> float``, a certified upper bound on its
Lipschitz constant for one input of shape ``input_shape`` (no batch dimension).
"""

from svconv.layers.activations import MaxMin
from svconv.layers.aol import AOL, AOLConv2d, AOLLinear, aol
from svconv.layers.clipped import ClipTo, clip_parametrize, export_clipped
from svconv.layers.batchnorm import ConvBN, bn_lipschitz, bn_scale_shift, conv_bn
from svconv.layers.downsample import InvertibleDownsampling
from svconv.layers.soc import SOC, SOCTT, skew_exp, taylor_tail

__all__ = [
    "AOL",
    "aol",
    "AOLConv2d",
    "AOLLinear",
    "ClipTo",
    "clip_parametrize",
    "export_clipped",
    "SOC",
    "SOCTT",
    "MaxMin",
    "InvertibleDownsampling",
    "ConvBN",
    "conv_bn",
    "bn_lipschitz",
    "bn_scale_shift",
    "taylor_tail",
    "skew_exp",
]
