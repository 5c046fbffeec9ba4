"""FastClip (Boroojeny et al. 2024): top-k clipping, FastClip-concat on TT layers, FastClip-clip BN.

Ground truth is the dense operator of each layer (``svconv.spectrum.dense_operator``), in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from svconv.config import TrialConfig
from svconv.control import clip_bn_, fastclip_
from svconv.layers import ConvBN, bn_lipschitz
from svconv.methods import get_method
from svconv.spectrum import dense_operator
from svconv.tt import TTConv2d


def svdvals(module: nn.Module, shape) -> torch.Tensor:
    was = module.training
    module.eval()
    try:
        return torch.linalg.svdvals(dense_operator(module, shape, dtype=torch.float64))
    finally:
        module.train(was)


def linear_with_spectrum(values) -> nn.Linear:
    """A 6 -> 8 linear layer with the given singular values and random singular vectors."""
    gen = torch.Generator().manual_seed(0)
    U = torch.linalg.qr(torch.randn(8, 6, generator=gen, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))[0]
    lin = nn.Linear(6, 8).double()
    with torch.no_grad():
        lin.weight.copy_(U @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ V.T)
    return lin


def test_one_top_k_step_on_a_dense_layer_is_the_svd_clip_and_leaves_the_rest():
    """Dense layer: G_i = u_i v_i^T are orthonormal, so one projection with exact triples is the SVD clip."""
    values = [5.0, 4.0, 3.0, 0.8, 0.5, 0.2]
    lin = linear_with_spectrum(values)
    W = lin.weight.detach().clone()
    _, _, Vh = torch.linalg.svd(W, full_matrices=False)
    res = fastclip_(lin, 1.0, n_iter=1, power_iters=60, k=3, generator=torch.Generator().manual_seed(0))
    assert res.passes == 1
    expect = torch.tensor([1.0, 1.0, 1.0, 0.8, 0.5, 0.2], dtype=torch.float64)
    torch.testing.assert_close(torch.linalg.svdvals(lin.weight.detach()), expect, rtol=0, atol=1e-10)
    # the rest unchanged: W' v = W v for the singular vectors below the target
    torch.testing.assert_close(lin.weight.detach() @ Vh[3:].T, W @ Vh[3:].T, rtol=0, atol=1e-10)

    # k = 1 clips only the largest per step; the next steps take the others, one by one
    lin1 = linear_with_spectrum(values)
    fastclip_(lin1, 1.0, n_iter=1, power_iters=60, k=1, generator=torch.Generator().manual_seed(0))
    top = torch.linalg.svdvals(lin1.weight.detach())
    torch.testing.assert_close(top, torch.tensor([4.0, 3.0, 1.0, 0.8, 0.5, 0.2], dtype=torch.float64), rtol=0, atol=1e-10)
    # k = 2 over three steps: {5, 4}, then {3}; the third step finds nothing above the target
    lin2 = linear_with_spectrum(values)
    res = fastclip_(lin2, 1.0, n_iter=3, power_iters=60, k=2, generator=torch.Generator().manual_seed(0))
    assert res.passes == 2
    torch.testing.assert_close(torch.linalg.svdvals(lin2.weight.detach()), expect, rtol=0, atol=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_full_support_circular_conv_top_k_step_equals_the_exact_clip(k):
    """A circular conv whose kernel covers the grid reaches every block-circulant operator; the exact clip of
    the top k is one of them and lies in the span of the G_i, so one projection with exact triples is it."""
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", bias=False).double()
    shape = (2, 3, 3)
    before = svdvals(conv, shape)
    c = float(before[k - 1] + before[k]) / 2  # exactly k singular values above the target
    res = fastclip_(conv, c, 3, n_iter=1, power_iters=200, k=k, generator=torch.Generator().manual_seed(0))
    assert res.passes == 1
    torch.testing.assert_close(svdvals(conv, shape), before.clamp(max=c), rtol=0, atol=1e-9)


@pytest.mark.parametrize("padding_mode,stride", [("reflect", 2), ("replicate", 1)])
def test_top_k_steps_bring_a_conv_to_the_target(padding_mode, stride):
    """Any conv: repeated top-k steps until PowerQR's estimates are at most the target. Each step sets the
    active Rayleigh values to c, so the true norm after the last one exceeds c only by what the warm k-block
    misses of the top singular directions (about 1e-6 here); 1e-3 leaves room, and a wrong step would leave
    the norm near its start, 4x the target."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=1, padding_mode=padding_mode).double()
    with torch.no_grad():
        conv.weight.mul_(4.0)
    shape = (2, 5 if stride == 1 else 6, 5 if stride == 1 else 6)
    assert svdvals(conv, shape)[0] > 3.0
    fastclip_(conv, 1.0, shape[1:], n_iter=40, power_iters=5, k=3, generator=torch.Generator().manual_seed(0))
    after = svdvals(conv, shape)
    assert float(after[0]) <= 1.0 + 1e-3
    assert float(after[2]) >= 0.9  # the top three were clipped to the target, not below it


def _tt_bn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    tt = TTConv2d(4, 5, 3, rank=(3, 3), padding=1, padding_mode="reflect").double()
    with torch.no_grad():
        tt.core.weight.mul_(4.0)
    bn = nn.BatchNorm2d(5).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0]))
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.normal_()
    return nn.Sequential(tt, bn, nn.ReLU())


def test_fastclip_bn_concat_on_a_tt_layer_bounds_the_composed_operator(clip_k=2):
    model = _tt_bn()
    tt, bn = model[0], model[1]
    shape = (4, 5, 5)
    gamma = bn.weight.detach().clone()
    assert svdvals(ConvBN(tt, bn), shape)[0] > 3.0
    method = get_method("fastclip", clip_to=1.0, clip_iters=40, power_iters=5, bn_concat=True, clip_k=clip_k)
    layers = method.attach(model, shape)
    assert [(layer.kind, layer.bn is bn) for layer in layers] == [("tt", True)]
    method.step(model, 0)
    composed = svdvals(ConvBN(tt, bn), shape)
    assert 1.0 - 1e-3 <= float(composed[0]) <= 1.0 + 1e-3  # the composition, not the TT layer alone
    assert torch.equal(bn.weight.detach(), gamma)  # only the core moves
    U, V = tt.frame_matrices()
    eye = torch.eye(3, dtype=U.dtype)
    torch.testing.assert_close(U @ U.T, eye, rtol=0, atol=1e-10)  # frames orthonormal (orthogonalised first)
    torch.testing.assert_close(V.T @ V, eye, rtol=0, atol=1e-10)
    assert method.estimate(model)["0"] == pytest.approx(float(composed[0]), rel=1e-3)


def test_clip_bn_clips_each_channel_scale_to_the_target():
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -3.0, 2.0, 1.0]))
        bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 1.0]))
    bn.eps = 0.0
    res = clip_bn_(bn.eval(), 1.0)
    # scales |gamma| / sqrt(var): 0.5, 1.5, 4, 1 -> 0.5, 1, 1, 1 (signs kept)
    torch.testing.assert_close(bn.weight.detach(), torch.tensor([0.5, -2.0, 0.5, 1.0], dtype=torch.float64))
    assert res.passes == 1 and res.sigma_after == pytest.approx(1.0) == bn_lipschitz(bn)
    assert float(svdvals(bn, (4, 2, 2))[0]) == pytest.approx(1.0, rel=1e-12)
    assert clip_bn_(bn, 1.0).passes == 0  # nothing above the target: untouched
    with pytest.raises(ValueError, match="affine"):
        clip_bn_(nn.BatchNorm2d(2, affine=False), 1.0)
    with pytest.raises(ValueError, match="max_sv must be a positive number"):
        clip_bn_(bn, 0.0)


def test_fastclip_clipbn_clips_convs_and_batch_norms_separately():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="zeros").double()
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        conv.weight.mul_(4.0)
        bn.weight.copy_(torch.tensor([0.5, 2.0, 4.0]))
    model = nn.Sequential(conv, bn, nn.ReLU())
    method = get_method("fastclip-clipbn", clip_to=1.0, clip_iters=40, power_iters=5)
    assert [layer.kind for layer in method.attach(model, (2, 5, 5))] == ["conv", "bn"]
    method.step(model, 0)
    assert float(svdvals(conv, (2, 5, 5))[0]) <= 1.0 + 1e-3
    assert bn_lipschitz(bn) == pytest.approx(1.0, rel=1e-12)
    assert float(bn.weight.detach()[0]) == 0.5  # a channel already below the target is left alone
    assert float(svdvals(ConvBN(conv, bn), (2, 5, 5))[0]) <= (1.0 + 1e-3) ** 2  # product of the two
    assert set(method.estimate(model)) == {"0", "1"}


def test_clip_k_and_the_bn_variants_are_validated_by_name():
    assert get_method("fastclip", clip_k=3).clip_k == 3
    assert TrialConfig(method="fastclip", clip_k=4).clip_k == 4
    with pytest.raises(ValueError, match="clip_k must be an int >= 1"):
        TrialConfig(method="fastclip", clip_k=0)
    with pytest.raises(ValueError, match="clip_k: not used by method 'division'.* takes clip_to, clip_every, clip_to_linear"):
        TrialConfig(method="division", clip_k=2)
    with pytest.raises(ValueError, match="bn_concat: not used by method 'fastclip-clipbn'.* takes .*clip_k$"):
        TrialConfig(method="fastclip-clipbn", bn_concat=True)
    with pytest.raises(ValueError, match="bn_concat: not used by method 'fastclip-clipbn'"):
        get_method("fastclip-clipbn", bn_concat=True)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        fastclip_(copy.deepcopy(nn.Linear(3, 3)), 1.0, k=0)
