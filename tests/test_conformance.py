"""Every registered training method on a tiny model of a family it goes with: attach, one optimiser step,
the control step, and each layer's recorded norm checked against the dense operator where the method
records the norm it reached. New methods are covered by registering them; no list here to update."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from svconv.methods import METHODS, check_compatible, get_method, model_layers
from svconv.models import build_model
from svconv.spectrum import dense_operator

SHAPE = (1, 8, 8)
#: a tiny arch of each family a method can be bound to (families=None: small-cnn)
TINY_ARCH = {None: "small-cnn", "lipconvnet": "lipconvnet-5-4", "aol": "aol-fc-8"}


def _arch(cls) -> str:
    return TINY_ARCH[cls.families[0] if cls.families else None]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_attaches_steps_and_enforces_on_a_tiny_model(name):
    cls = METHODS[name]
    arch = _arch(cls)
    check_compatible(name, arch)  # the declared family is one the method accepts
    if cls.unavailable():
        pytest.skip(cls.unavailable())
    torch.manual_seed(0)
    model = build_model(arch, 3, SHAPE, (0.5,), (0.25,), layers=model_layers(name))
    options = {"clip_to": 0.5} if "clip_to" in {f.name for f in dataclasses.fields(cls.options)} else {}
    method = get_method(name, **options)
    method.attach(model, SHAPE)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(4, *SHAPE), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert method.step(model, 0) and method.n_control_steps == 1
    for p in model.parameters():
        assert torch.isfinite(p).all(), name
    for layer in method.layers:
        res = method.results.get(layer.name)
        if res is None or res.sigma_after is None or layer.kind not in ("conv", "linear"):
            continue
        module = layer.module
        if layer.kind == "conv" and any(p for p in module.padding) and module.padding_mode != "circular":
            continue  # the recorded norm is of the periodic operator the method controls, not the zero-padded layer
        dense = float(torch.linalg.svdvals(dense_operator(copy.deepcopy(module).double(), layer.input_shape, dtype=torch.float64))[0])
        assert res.sigma_after == pytest.approx(dense, rel=1e-5), (name, layer.name)  # float32 model, float64 operator
