"""TT (Tucker-2) compressed convolutions whose singular values are those of a small core (Senderovich et al. 2022).

``TTConv2d``/``TTConv3d`` (``U`` 1x1 -> core k^d -> ``V`` 1x1), ``from_conv`` (HOSVD of a trained conv),
``to_tt`` (replace the convs of any model where that saves weights), ``orthogonality_loss`` (eq. 11), ``compression_ratio``.
"""

from svconv.tt.conv import TTConv2d, TTConv3d
from svconv.tt.decompose import TTEntry, TTReport, compressing_rank, compression_ratio, from_conv, to_tt, useful_ranks
from svconv.tt.frames import TTFrames, orthogonality_loss, parse_ranks, tt_weights

__all__ = [
    "TTConv2d",
    "TTConv3d",
    "TTFrames",
    "TTEntry",
    "TTReport",
    "from_conv",
    "to_tt",
    "orthogonality_loss",
    "compression_ratio",
    "parse_ranks",
    "useful_ranks",
    "compressing_rank",
    "tt_weights",
]
