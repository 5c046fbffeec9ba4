"""svconv.tt against the explicit operator matrix: TT spectra through the core, HOSVD, clipping, frames, to_tt."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from svconv.layers import SOCTT
from svconv.spectrum import conv_spectral_norm, dense_operator
from svconv.tt import TTConv2d, TTConv3d, compression_ratio, from_conv, orthogonality_loss, to_tt

F64 = torch.float64


def dense_svdvals(module: nn.Module, input_shape) -> torch.Tensor:
    """Every singular value of the module's (affine) operator, descending, from its dense float64 matrix."""
    return torch.linalg.svdvals(dense_operator(module, input_shape, dtype=F64))


def padded(sv: torch.Tensor, n: int) -> torch.Tensor:
    """``sv`` sorted descending and zero-padded to length ``n``."""
    sv = torch.sort(sv.detach(), descending=True).values
    return torch.cat([sv, sv.new_zeros(n - len(sv))])


def tt_layer(d: int, c_in: int, c_out: int, rank, stride: int, orthogonal: bool, seed: int = 0):
    """A circular-padded 3^d TT layer in float64; ``orthogonal=False`` gives frames far from orthonormal."""
    torch.manual_seed(seed)
    cls = TTConv2d if d == 2 else TTConv3d
    layer = cls(c_in, c_out, 3, rank, stride=stride, padding=1, padding_mode="circular", dtype=F64)
    if not orthogonal:
        with torch.no_grad():
            layer.U.weight.normal_()
            layer.V.weight.normal_()
            layer.V.bias.normal_()
    return layer


# (d, c_in, c_out, rank, spatial size, stride): 2-D and 3-D, stride 1 and 2, r1 != r2, c_in != c_out.
GEOMETRIES = [
    (2, 6, 5, (4, 3), (6, 6), 1),
    (2, 5, 7, (3, 4), (8, 6), 2),
    (3, 4, 3, (3, 2), (4, 4, 4), 1),
    (3, 3, 4, (2, 3), (4, 4, 4), 2),
]


@pytest.mark.parametrize("d, c_in, c_out, rank, n, stride", GEOMETRIES)
def test_core_singular_values_are_the_layers_after_orthogonalize(d, c_in, c_out, rank, n, stride):
    layer = tt_layer(d, c_in, c_out, rank, stride, orthogonal=False)
    shape = (c_in, *n)
    x = torch.randn(2, *shape, dtype=F64)
    before_out = layer(x).detach()
    truth = dense_svdvals(layer, shape)
    core = padded(layer.singular_values(n), len(truth))
    # Non-orthonormal frames: the core's spectrum is not the layer's (so the check below can fail).
    assert (core - truth).abs().max() > 0.1 * truth[0]

    assert layer.orthogonalize_() is layer
    assert layer.frames_orthogonal(1e-10)
    torch.testing.assert_close(layer(x), before_out, rtol=1e-10, atol=1e-10)  # Lemma 3.2: same function
    truth = dense_svdvals(layer, shape)
    sv = layer.singular_values(n)
    m = [nj // stride for nj in n]
    r1, r2 = rank
    assert sv.shape == (torch.Size(m).numel() * min(r2, r1 * stride**d),)
    torch.testing.assert_close(padded(sv, len(truth)), truth, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.spectral_norm(n), truth[0], rtol=1e-9, atol=0)
    # full_weight is the same operator: its exact spectral norm agrees.
    torch.testing.assert_close(conv_spectral_norm(layer.full_weight().detach(), n, stride), truth[0], rtol=1e-9, atol=0)


def test_orthogonalize_keeps_orthonormal_frames_and_the_function():
    layer = tt_layer(2, 6, 5, 3, 1, orthogonal=True)
    U, V, C = (t.detach().clone() for t in (layer.U.weight, layer.V.weight, layer.core.weight))
    layer.orthogonalize_()
    torch.testing.assert_close(layer.U.weight, U, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.V.weight, V, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.core.weight, C, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls, conv", [(TTConv2d, nn.Conv2d), (TTConv3d, nn.Conv3d)])
def test_full_weight_and_to_conv_compute_the_layer(cls, conv):
    torch.manual_seed(1)
    layer = cls(4, 5, 3, (3, 2), stride=2, padding=2, dilation=2, padding_mode="zeros", dtype=F64)
    x = torch.randn(2, 4, *([7] * (conv is nn.Conv3d and 3 or 2)), dtype=F64)
    plain = layer.to_conv()
    assert type(plain) is conv and plain.weight.shape == (5, 4, 3, 3, *([3] if conv is nn.Conv3d else []))
    torch.testing.assert_close(plain(x), layer(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(plain.weight, layer.full_weight())


def hosvd_bound_sq(w: torch.Tensor, r1: int, r2: int) -> float:
    """The discarded squared singular values of the two channel unfoldings."""
    c_out, c_in = w.shape[:2]
    s_in = torch.linalg.svdvals(w.transpose(0, 1).reshape(c_in, -1))
    s_out = torch.linalg.svdvals(w.reshape(c_out, -1))
    return float(s_in[r1:].pow(2).sum() + s_out[r2:].pow(2).sum())


@pytest.mark.parametrize("conv_cls", [nn.Conv2d, nn.Conv3d])
def test_from_conv_full_rank_reproduces_the_conv(conv_cls):
    torch.manual_seed(2)
    conv = conv_cls(5, 4, 3, stride=2, padding=1, padding_mode="circular", dtype=F64)
    layer, error = from_conv(conv, 100)  # clamped to (5, 4)
    assert isinstance(layer, TTConv2d if conv_cls is nn.Conv2d else TTConv3d)
    assert layer.ranks == (5, 4) and error < 1e-12
    assert layer.frames_orthogonal(1e-10)
    x = torch.randn(2, 5, *([6] * (conv.weight.dim() - 2)), dtype=F64)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rank", [1, (2, 3), (4, 1)])
def test_from_conv_low_rank_error_within_the_hosvd_bound(rank):
    torch.manual_seed(3)
    conv = nn.Conv2d(6, 5, 3, bias=False, dtype=F64)
    w = conv.weight.detach()
    layer, error = from_conv(conv, rank)
    r1, r2 = layer.ranks
    actual = float((w - layer.full_weight().detach()).norm() / w.norm())
    assert error == pytest.approx(actual, rel=1e-9)
    assert 0 < error**2 <= hosvd_bound_sq(w, r1, r2) / float(w.norm() ** 2) * (1 + 1e-9)
    # Truncation keeps the leading subspaces: the bound is not vacuous (error below the trivial 1).
    assert error < 1


@pytest.mark.parametrize("stride", [1, 2])
def test_clip_brings_the_full_operator_to_the_target(stride):
    layer = tt_layer(2, 6, 5, (4, 3), stride, orthogonal=False, seed=4)
    with torch.no_grad():
        layer.core.weight.mul_(4)
    n = (8, 8)
    before = float(dense_svdvals(layer, (6, *n))[0])
    assert before > 1.2
    layer.clip_(1.0, n, n_iter=30)
    after = float(dense_svdvals(layer, (6, *n))[0])
    assert abs(after - 1.0) <= 0.01
    assert float(layer.spectral_norm(n).detach()) == pytest.approx(after, rel=1e-9)


def reference_orthogonal_loss(layers) -> torch.Tensor:
    """``orthogonal_loss`` of github.com/WhiteTeaDragon/practical_svd_conv (src/SOTT.py) over layers with its
    ``K1 (c_in, r1)`` and ``K3 (r2, c_out)`` (our ``U.T`` and ``V.T``), divided by its ``shapes`` as its training
    loop does: ``sum mse(K1^T K1, I, sum) + mse(K3 K3^T, I, sum)`` over ``sum 2 K3.shape[0]^2``."""
    loss, shapes = 0, 0
    for m in layers:
        K1, K3 = m.U.weight.flatten(1).T, m.V.weight.flatten(1).T
        loss = loss + F.mse_loss(K1.T @ K1, torch.eye(K1.shape[1], dtype=K1.dtype), reduction="sum")
        loss = loss + F.mse_loss(K3 @ K3.T, torch.eye(K3.shape[0], dtype=K3.dtype), reduction="sum")
        shapes += 2 * K3.shape[0] ** 2
    return loss / shapes


def test_orthogonality_loss_zero_after_orthogonalize_positive_otherwise_with_gradients():
    model = nn.Sequential(
        tt_layer(2, 6, 5, (4, 3), 1, orthogonal=False, seed=5),
        nn.ReLU(),
        tt_layer(2, 5, 4, 2, 1, orthogonal=False, seed=6),
        SOCTT(4, 2, dtype=F64),
    )
    with torch.no_grad():
        model[3].U.weight.normal_()
    loss = orthogonality_loss(model)
    assert loss.item() > 0.01
    loss.backward()
    for m in (model[0], model[2], model[3]):
        for frame in (m.U, m.V):
            assert frame.weight.grad is not None and frame.weight.grad.abs().max() > 0
    # By hand for the first layer (ranks 4, 3): the authors' code sums both squared errors and divides by 2 r2^2.
    U, V = model[0].frame_matrices()
    own = (((U @ U.T - torch.eye(4, dtype=F64)) ** 2).sum() + ((V.T @ V - torch.eye(3, dtype=F64)) ** 2).sum()) / (2 * 3**2)
    torch.testing.assert_close(orthogonality_loss(model[0]), own)
    torch.testing.assert_close(orthogonality_loss(model), reference_orthogonal_loss([model[0], model[2], model[3]]))

    model[0].orthogonalize_()
    model[2].orthogonalize_()
    model[3].project_frames_()
    assert orthogonality_loss(model).item() < 1e-20
    empty = orthogonality_loss(nn.Sequential(nn.Conv2d(2, 2, 3)))
    assert empty.shape == () and empty.item() == 0


def test_compression_ratio_of_a_layer_and_a_model():
    layer = TTConv2d(64, 32, 3, (16, 8))
    tt = 64 * 16 + 16 * 8 * 9 + 8 * 32
    assert compression_ratio(layer) == pytest.approx(64 * 32 * 9 / tt)
    conv = nn.Conv2d(3, 64, 3)
    assert compression_ratio(nn.Sequential(conv)) == 1.0
    model = nn.Sequential(conv, nn.ReLU(), layer, nn.Linear(10, 10))
    assert compression_ratio(model) == pytest.approx((3 * 64 * 9 + 64 * 32 * 9) / (3 * 64 * 9 + tt))
    soctt = SOCTT(16, 4)
    assert compression_ratio(soctt) == pytest.approx(16 * 16 * 9 / (16 * 4 + 4 * 4 * 9 + 4 * 16))


def test_to_tt_replaces_convs_and_reports():
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8)),
        nn.Conv2d(8, 4, 3, padding=1, groups=2),
        nn.Conv2d(4, 4, 1),
    ).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=F64)
    before = model(x).detach()
    report = to_tt(model, 4, skip_first=True)
    assert report.replaced == ["2.0"]
    assert report.kept == ["0", "3", "4"]
    reasons = {e.name: e.reason for e in report.entries}
    assert "skip_first" in reasons["0"] and "groups" in reasons["3"] and "not smaller" in reasons["4"]
    assert type(model[0]) is nn.Conv2d and isinstance(model[2][0], TTConv2d) and model[2][0].ranks == (4, 4)
    entry = report.entries[1]
    assert entry.params == 8 * 4 + 4 * 4 * 9 + 4 * 8 and entry.compression == pytest.approx(8 * 8 * 9 / entry.params)
    assert 0 < entry.error < 1
    assert report.compression == pytest.approx(report.dense_params / report.params) and report.compression > 1
    assert "1 replaced, 3 kept" in str(report) and len(report.rows()) == 4
    assert to_tt(model, 4).replaced == []  # idempotent: TT layers are left alone

    assert before.shape == (2, 4, 4, 4)

    # A conv whose kernel has channel ranks (3, 3) is reproduced exactly at rank 3; the first conv is
    # considered when skip_first=False, and kept because at ranks capped to (3, 5) its TT form is larger.
    lowrank = TTConv2d(6, 6, 3, 3, padding=1, dtype=F64).to_conv()
    full = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), lowrank).double()
    y = full(x).detach()
    rep = to_tt(full, (5, 5), skip_first=False)
    assert rep.kept == ["0"] and "not smaller" in rep.entries[0].reason and rep.replaced == ["1"]
    assert to_tt(full, 3).replaced == [] and isinstance(full[1], TTConv2d)
    full2 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), TTConv2d(6, 6, 3, 3, padding=1, dtype=F64).to_conv()).double()
    y2 = full2(x).detach()
    rep2 = to_tt(full2, 3)
    assert rep2.replaced == ["1"] and rep2.entries[1].error < 1e-12
    torch.testing.assert_close(full2(x), y2, rtol=1e-10, atol=1e-10)
    assert y.shape == y2.shape


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: TTConv2d(4, 4, 3, 0), "rank"),
        (lambda: TTConv2d(4, 4, 3, -2), "rank"),
        (lambda: TTConv2d(4, 4, 3, 1.5), "rank"),
        (lambda: TTConv2d(4, 4, 3, (1, 2, 3)), "rank"),
        (lambda: TTConv2d(4, 4, 3, True), "rank"),
        (lambda: TTConv2d(0, 4, 3, 2), "in_channels"),
        (lambda: TTConv3d(4, -1, 3, 2), "out_channels"),
        (lambda: from_conv(nn.Conv2d(4, 4, 3), 0), "rank"),
        (lambda: from_conv(nn.Conv2d(4, 4, 3, groups=2), 2), "groups"),
        (lambda: to_tt(nn.Sequential(nn.Conv2d(4, 4, 3)), "big"), "rank"),
        (lambda: to_tt(nn.Conv2d(4, 4, 3), 2), "model"),
        (lambda: TTConv2d(4, 4, 3, 2).clip_(0.0, (8, 8)), "max_sv"),
        (lambda: TTConv2d(4, 4, 3, 2).clip_(1.0, (8, 8), n_iter=0), "n_iter"),
        (lambda: TTConv2d(4, 4, 3, 2, stride=3).singular_values((8, 8)), "stride"),
        (lambda: TTConv2d(4, 4, 3, 2).singular_values((2, 8)), "input_size"),
        (lambda: TTConv2d(4, 4, 3, 2).lipschitz_bound((3, 8, 8)), "input_shape"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="conv must be"):
        from_conv(nn.Linear(3, 3), 2)
    with pytest.raises(TypeError, match="layer_or_model"):
        compression_ratio("model")


@pytest.mark.cuda
def test_tt_spectra_stay_on_cuda():
    layer = tt_layer(2, 6, 5, (4, 3), 2, orthogonal=False).cuda()
    layer.orthogonalize_()
    sv = layer.singular_values((8, 8))
    assert sv.device.type == "cuda"
    truth = dense_svdvals(layer, (6, 8, 8)).cpu()
    torch.testing.assert_close(padded(sv.cpu(), len(truth)), truth, rtol=1e-9, atol=1e-9)
    layer.clip_(1.0, (8, 8), n_iter=2)
    assert layer.core.weight.device.type == "cuda"
