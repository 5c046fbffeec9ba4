"""SOC-TT with a width change and a stride, laid out as Senderovich et al.'s code (``U`` before the invertible
downsampling): against the dense operator matrix, the plain-SOC path's channel order, and its weight counts."""

from __future__ import annotations

import pytest
import torch

from svconv.layers import SOC, SOCTT, InvertibleDownsampling
from svconv.models.channels import FirstChannels, PadChannels
from svconv.models.lipconvnet import soc_tt_weights, soc_weights
from svconv.spectrum import dense_operator

F64 = torch.float64


def test_full_rank_strided_soc_tt_is_orthogonal():
    """2 -> 8 channels, stride 2, rank 8: U is a 2x2 orthogonal matrix, the core an SOC on 8 channels, V 8x8
    orthogonal, so the operator R^(2·4·4) -> R^(8·2·2) is orthogonal up to the 12-term Taylor truncation."""
    torch.manual_seed(0)
    layer = SOCTT(2, 8, out_channels=8, stride=2, dtype=F64).eval()
    assert layer.ranks == (2, 8) and layer.core.channels == 8
    sv = torch.linalg.svdvals(dense_operator(layer, (2, 4, 4)))
    assert sv.numel() == 32
    torch.testing.assert_close(sv, torch.ones_like(sv), rtol=0, atol=1e-8)


@pytest.mark.parametrize("c_in, c_out, rank, stride, kernel", [(6, 5, 2, 2, 3), (3, 8, 2, 2, 1), (5, 3, 2, 1, 3)])
def test_compressed_soc_tt_is_bounded_by_its_certificate(c_in, c_out, rank, stride, kernel):
    """Orthonormal frames at init: every singular value <= 1 and <= the certified bound (a bound, checked as one)."""
    torch.manual_seed(1)
    layer = SOCTT(c_in, rank, kernel_size=kernel, out_channels=c_out, stride=stride, dtype=F64).eval()
    sv = torch.linalg.svdvals(dense_operator(layer, (c_in, 4, 4)))
    bound = layer.lipschitz_bound((c_in, 4, 4))
    assert sv.max() <= bound * (1 + 1e-12) and sv.max() <= 1 + 1e-8
    assert layer.frames_orthogonal(1e-10)


def test_forward_is_the_plain_soc_path_between_the_frames():
    """U, then InvertibleDownsampling, PadChannels, the core, FirstChannels (the modules LipConvNet's plain SOC
    layers use), then V: the same function, so the channel orders agree."""
    torch.manual_seed(2)
    layer = SOCTT(3, 2, out_channels=6, stride=2, dtype=F64).eval()  # r1 = 2 -> 8 channels, r2 = 2
    x = torch.randn(2, 3, 8, 8, dtype=F64)
    core = torch.nn.Sequential(InvertibleDownsampling(2), PadChannels(8), layer.core, FirstChannels(2))
    torch.testing.assert_close(layer(x), layer.V(core(layer.U(x))))
    assert layer(x).shape == (2, 6, 4, 4)


@pytest.mark.parametrize("c_in, c_out, rank, stride, kernel", [(128, 256, 128, 2, 3), (256, 512, 128, 2, 3), (1024, 10, 128, 1, 1), (64, 64, 16, 1, 3)])
def test_weight_counts(c_in, c_out, rank, stride, kernel):
    """``tt_params``/``dense_params`` against the formulas (built on the meta device: shapes only), and one by hand:
    128 -> 256 at rank 128 is U 128·128 + core 512^2·9 + V 128·256 = 2,408,448 against the SOC's 512^2·9."""
    with torch.device("meta"):
        layer = SOCTT(c_in, rank, kernel_size=kernel, out_channels=c_out, stride=stride)
    r1, r2 = min(rank, c_in), min(rank, c_out)
    assert layer.ranks == (r1, r2) and layer.rank == max(r1, r2)
    assert layer.tt_params() == soc_tt_weights(c_in, c_out, kernel, stride, r1, r2)
    assert layer.dense_params() == soc_weights(c_in, c_out, kernel, stride) == SOC(max(c_in * stride**2, c_out), kernel, device="meta").weight.numel()
    if (c_in, c_out, rank) == (128, 256, 128):
        assert layer.tt_params() == 2_408_448 and layer.dense_params() == 2_359_296


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: SOCTT(4, 2, stride=0), "stride"),
        (lambda: SOCTT(4, 2, out_channels=0), "out_channels"),
        (lambda: SOCTT(4, 2, stride=2)(torch.zeros(1, 4, 5, 5)), "divisible"),
        (lambda: SOCTT(4, 2, stride=2).lipschitz_bound((4, 5, 4)), "divisible"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()
