"""clip_model_, model_norms and the ClipTo parametrisation against the dense operator on tiny models."""

import pytest
import torch
from torch import nn

from svconv.control import clip_model_, model_norms, supported_layers
from svconv.layers import bn_lipschitz, clip_parametrize, export_clipped
from svconv.spectrum import dense_operator

C, TOL = 1.0, 0.01


def dense_norm(module: nn.Module, input_shape) -> float:
    was = module.training
    module.eval()  # a ClipTo parametrisation projects on training accesses only
    try:
        return float(torch.linalg.matrix_norm(dense_operator(module, input_shape, dtype=torch.float64), ord=2))
    finally:
        module.train(was)


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="circular"),
        nn.Conv2d(6, 6, 3, padding=1, groups=2),  # grouped: not supported, left alone
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
    )
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(8)
        model[1].weight.uniform_(2, 3)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.double()


# the layers' inputs in the tiny model, on an 8x8 input
SHAPES = {"0": (3, 8, 8), "3": (4, 8, 8), "6": (96,)}


def test_clip_model_lands_every_supported_layer_in_the_band_of_its_dense_operator():
    model = tiny_model()
    grouped = model[4].weight.clone()
    results = clip_model_(model, C, (3, 8, 8), tol=TOL, kinds=("conv", "linear", "bn"))
    assert [(r.name, r.kind) for r in results] == [("0", "conv"), ("1", "bn"), ("3", "conv"), ("6", "linear")]
    for r in results:
        module = model.get_submodule(r.name)
        if r.kind == "bn":
            true = bn_lipschitz(module)
        else:
            true = dense_norm(module, SHAPES[r.name])
        assert r.sigma_after == pytest.approx(true, rel=1e-6)  # exact, not an estimate
        assert true <= C * (1 + TOL) * (1 + 1e-9) and r.passes_target
        if r.kind in ("conv", "linear"):
            assert true >= C * (1 - TOL)  # landed in the band, not far below
        assert r.sigma_before > C * (1 + TOL) and r.passes >= 1 and r.time_s >= 0 and r.rel_change > 0
    assert results[0].input_size == (8, 8) and results[2].input_size == (8, 8) and results[3].input_size == ()
    assert results[2].shape == (6, 4, 3, 3)
    assert torch.equal(model[4].weight, grouped)


def test_sigma_before_and_model_norms_are_the_dense_norms_and_change_nothing():
    model = tiny_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    norms = model_norms(model, (3, 8, 8))
    assert set(norms) == {"0", "3", "6"}
    for name, shape in SHAPES.items():
        assert norms[name] == pytest.approx(dense_norm(model.get_submodule(name), shape), rel=1e-6)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    before = {r.name: r.sigma_before for r in clip_model_(model, C, (3, 8, 8))}
    assert before == pytest.approx(norms, rel=1e-9)


def test_levels_carried_over_warm_start_the_next_call():
    model = tiny_model()
    first = clip_model_(model, C, (3, 8, 8), measure_before=False)
    assert all(r.sigma_before is None for r in first)
    assert any(r.passes > 1 for r in first if r.kind == "conv")
    again = tiny_model()  # the same weights: the level found lands in the band at once
    second = clip_model_(again, C, (3, 8, 8), levels={r.name: r.level for r in first})
    for a, b in zip(first, second):
        assert b.passes == min(a.passes, 1) and b.sigma_after == pytest.approx(a.sigma_after, rel=1e-9)
        assert torch.allclose(model.get_submodule(a.name).weight, again.get_submodule(a.name).weight, rtol=0, atol=1e-12)


def test_unsupported_layers_are_skipped_and_bad_arguments_named():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, dilation=2, padding=2), nn.Flatten(), nn.Unflatten(1, (2, 64)), nn.Conv1d(2, 2, 3))
    assert supported_layers(model, (2, 8, 8)) == []
    assert clip_model_(model, C, (2, 8, 8)) == []
    with pytest.raises(ValueError, match="kinds must be drawn from conv, tt, linear, bn"):
        clip_model_(tiny_model(), C, (3, 8, 8), kinds=("conv", "soc"))
    with pytest.raises(ValueError, match="max_sv"):
        clip_model_(tiny_model(), 0.0, (3, 8, 8))


def test_clip_parametrize_projects_every_n_training_forwards_and_exports_a_plain_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    with torch.no_grad():
        conv.weight.mul_(10)
    clip_parametrize(conv, C, 6, every=2, tol=TOL)
    assert abs(dense_norm(conv, (3, 6, 6)) - C) <= TOL * C  # clipped at registration
    p = conv.parametrizations.weight[0]
    opt = torch.optim.SGD(conv.parameters(), lr=5.0)
    x = torch.randn(8, 3, 6, 6, dtype=torch.float64)
    for _ in range(4):
        opt.zero_grad()
        conv(x).pow(2).sum().backward()
        assert conv.parametrizations.weight.original.grad is not None  # the gradient passes through
        opt.step()
    assert p.projections == 1 + 2  # at registration, then at training forwards 1 and 3
    drifted = dense_norm(conv, (3, 6, 6))
    assert drifted > C * (1 + TOL)  # the last step moved it: the next projection is due
    conv.eval()
    with torch.no_grad():
        conv(x)
    assert p.projections == 3  # eval forwards never project
    export_clipped(conv)
    assert type(conv) is nn.Conv2d and not hasattr(conv, "parametrizations")
    assert isinstance(conv.weight, nn.Parameter)
    assert abs(dense_norm(conv, (3, 6, 6)) - C) <= TOL * C
    with pytest.raises(ValueError, match="no ClipTo"):
        export_clipped(conv)
    with pytest.raises(ValueError, match="groups=1 and dilation=1"):
        clip_parametrize(nn.Conv2d(4, 4, 3, groups=2), C, 6)
