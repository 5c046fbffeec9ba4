"""``rescale`` (Delattre et al. 2024 spectral rescaling): a bound and a control step, held to the dense operator;
registered as a training method and a bench estimator by its module alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svconv.methods.rescale import rescale_bound, rescaling_factors, spectral_rescale_
from svconv.spectrum import dense_operator


def dense_norm(module: nn.Module, input_shape) -> float:
    return float(torch.linalg.matrix_norm(dense_operator(module, input_shape, dtype=torch.float64), ord=2))


def conv(c_in, c_out, *, ndim=2, stride=1, padding_mode="zeros", seed=0, scale=3.0):
    torch.manual_seed(seed)
    cls = nn.Conv2d if ndim == 2 else nn.Conv3d
    m = cls(c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding_mode, bias=False).double()
    with torch.no_grad():
        m.weight.mul_(scale)
    return m


CASES = [  # (c_in, c_out, ndim, stride, padding, input size): zero padding first, as the paper treats it
    (3, 5, 2, 1, "zeros", 6),
    (5, 3, 2, 2, "zeros", 6),
    (4, 4, 2, 1, "circular", 5),
    (3, 4, 2, 2, "circular", 6),
    (3, 4, 2, 1, "reflect", 6),
    (2, 3, 3, 1, "zeros", 4),
]


@pytest.mark.parametrize("c_in, c_out, ndim, stride, padding, n", CASES)
def test_bound_holds_and_tightens_with_iterations(c_in, c_out, ndim, stride, padding, n):
    m = conv(c_in, c_out, ndim=ndim, stride=stride, padding_mode=padding)
    true = dense_norm(m, (c_in, *[n] * ndim))
    bounds = [rescale_bound(m, n, it) for it in (1, 2, 3)]
    assert all(true <= b * (1 + 1e-9) for b in bounds), (true, bounds)
    assert bounds[2] <= bounds[0] * (1 + 1e-9)
    if padding != "reflect":  # the output side's factors bound it too (reflect: times the padding map's norm)
        assert true <= float(rescaling_factors(m.weight, 2).max()) * (1 + 1e-9)


@pytest.mark.parametrize("c_in, c_out, ndim, stride, padding, n", CASES)
def test_rescaled_layer_is_below_the_target(c_in, c_out, ndim, stride, padding, n):
    m = conv(c_in, c_out, ndim=ndim, stride=stride, padding_mode=padding)
    res = spectral_rescale_(m, 0.5, n, n_iter=2, check=True)
    assert res.passes == 1 and res.target == 0.5 and res.rel_change > 0
    assert dense_norm(m, (c_in, *[n] * ndim)) <= 0.5 * (1 + 1e-9)
    before = m.weight.detach().clone()
    assert spectral_rescale_(m, 10.0, n).passes == 0 and torch.equal(m.weight, before)  # nothing above 10


def test_linear_one_iteration_is_aol_on_the_output_side():
    torch.manual_seed(1)
    W = torch.randn(4, 7, dtype=torch.float64)
    t = rescaling_factors(W, 1)
    assert torch.allclose(t, (W @ W.T).abs().sum(1).sqrt())
    lin = nn.Linear(7, 4, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(W)
    spectral_rescale_(lin, 1.0, n_iter=3)
    assert float(torch.linalg.matrix_norm(lin.weight.detach(), ord=2)) <= 1 + 1e-12
    with pytest.raises(ValueError, match="n_iter"):
        rescaling_factors(W, 0)


def test_method_on_a_tt_model_and_its_registry_entries():
    from bench.grid import DEFAULT_ITERS, LAYER_METHODS, MODEL_METHODS, expand
    from bench.run import run_configs
    from bench.theory import method_flops
    from svconv.methods import METHODS, get_method, method_help
    from svconv.models import build_model

    assert "rescale" in METHODS and "rescale:" in method_help()
    assert LAYER_METHODS["rescale"] == "bound" and MODEL_METHODS["rescale"] == "control" and DEFAULT_ITERS["rescale"] == 2
    assert method_flops("rescale", 8, 4, (3, 3), (8, 8), (1, 1), iters=2) == 2 * 4 * 4 * 8 * 9 * 25 + 2 * 4 * 4 * 4 * 25 * 81
    torch.manual_seed(0)
    model = build_model("small-cnn", 10, (1, 12, 12), (0.5,), (0.25,), rank=4).double()
    method = get_method("rescale", clip_to=1.0)
    method.attach(model, (1, 12, 12))
    assert [layer.kind for layer in method.layers].count("tt") == 2
    method.step(model, 0)
    est = method.estimate(model)
    for layer in method.layers:
        true = dense_norm(layer.module, layer.input_shape)
        assert true <= 1 + 1e-9 and true <= est[layer.name] * (1 + 1e-9), layer.name
    rows = run_configs(expand({"method": "rescale", "channels": [[4, 6]], "input_size": 6, "padding": ["zeros", "circular"],
                               "dtype": "float64", "repeats": 1, "warmup": 0})
                       + expand({"scope": "model", "arch": "small-cnn", "input_shape": [1, 12, 12], "method": "rescale",
                                 "repeats": 1, "warmup": 0}), progress=False)  # fmt: skip
    assert [r["status"] for r in rows] == ["ok"] * 3, [r["reason"] for r in rows]
    assert all(r["gap"] >= -1e-12 for r in rows[:2])  # a bound of the layer's own operator (dense in float64)
    assert rows[2]["sigma_after"] <= 1 + 1e-6 and rows[2]["passes"] == 1 and rows[2]["rel_change"] > 0
