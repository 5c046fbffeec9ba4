"""The peers' methods (aoc, bcop, sll, cayley, bjorck): LipConvNet from their layers, the certified bound,
compatibility rules, a real trial, and what happens when a library does not import."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from svconv.config import TrialConfig
from svconv.layers.peers import PEERS, PeerLayer
from svconv.methods import METHODS, check_compatible, get_method, model_layers
from svconv.metrics.lipschitz_bound import leaf_lipschitz_bounds, network_lipschitz_bound
from svconv.models.peer_nets import peer_lipconvnet


def test_every_peer_is_a_registered_training_method_of_lipconvnet():
    assert set(PEERS) <= set(METHODS) and list(PEERS) == ["aoc", "bcop", "sll", "cayley", "bjorck"]
    for name in PEERS:
        check_compatible(name, "lipconvnet-5")
        assert model_layers(name) == name
    assert model_layers("soc") is None and model_layers("clip") is None


@pytest.mark.parametrize(
    "method,arch,rank,match",
    [
        ("aoc", "small-cnn", None, "'aoc' needs an architecture of family lipconvnet"),
        ("bjorck", "wrn-16-10", None, "'bjorck' needs an architecture of family lipconvnet"),
        ("clip", "lipconvnet-5", None, "needs method 'soc' or 'aoc' or 'bcop' or 'sll' or 'cayley' or 'bjorck'"),
        ("sll", "lipconvnet-10", 16, "'sll' has no TT variant"),
    ],
)
def test_check_compatible_refuses_peers_elsewhere(method, arch, rank, match):
    with pytest.raises(ValueError, match=match):
        check_compatible(method, arch, rank)


@pytest.mark.parametrize("method", list(PEERS))
def test_peer_lipconvnet_is_the_skeleton_with_the_methods_layers(method):
    """LipConvNet-5's skeleton (here 4 channels wide at the first block) with one PeerLayer per SOC: logits of
    the right shape, a finite certified bound that is the product of its layers' (each within float32
    rounding of 1; MaxMin, reshaping and Normalize contribute 1) and the layers' kind in every table."""
    from svconv.metrics.layer_norms import layer_spectral_norms

    torch.manual_seed(0)
    net = peer_lipconvnet(method, 5, 1, 10, (28, 28), init_channels=4)
    peers = [m for m in net.modules() if isinstance(m, PeerLayer)]
    assert len(peers) == 6 and all(m.method == method for m in peers)
    x = torch.rand(3, 1, 28, 28)
    out = net(x)
    assert out.shape == (3, 10)
    out.square().sum().backward()  # trains: every layer gets a gradient
    assert all(any(p.grad is not None for p in m.parameters()) for m in peers)
    net.eval()
    leaves = leaf_lipschitz_bounds(net, (1, 28, 28))
    peer_bounds = [b for name, b in leaves.items() if isinstance(net.get_submodule(name), PeerLayer)]
    assert len(peer_bounds) == 6 and all(1 <= b <= 1 + 1e-5 for b in peer_bounds), peer_bounds
    bound = network_lipschitz_bound(net, (1, 28, 28))
    # orthogonium refreshes its power-iteration vectors at every weight access, eval mode too: kernels move by ~1e-7
    assert bound == pytest.approx(math.prod(leaves.values()), rel=1e-5) and bound <= 1 + 1e-4
    # the bound holds on inputs: ||f(x) - f(y)|| <= L ||x - y||
    y = x + 0.1 * torch.randn_like(x)
    with torch.no_grad():
        assert float((net(x) - net(y)).norm(dim=1).max()) <= bound * float((x - y).flatten(1).norm(dim=1).max())
    rows = layer_spectral_norms(net, (1, 28, 28), power_iters=3, bounds=leaves)
    assert [r["kind"] for r in rows] == ["peer"] * 6
    assert all(r["spectral_norm"] <= r["lipschitz_bound"] * (1 + 1e-4) for r in rows)


def test_peer_method_estimates_its_layers_and_has_no_control_step():
    torch.manual_seed(0)
    net = peer_lipconvnet("bjorck", 5, 1, 10, (28, 28), init_channels=4)
    method = get_method("bjorck")
    layers = method.attach(net, (1, 28, 28))
    assert [layer.kind for layer in layers] == ["lipschitz"] * 6
    weights = [p.detach().clone() for p in net.parameters()]
    method.enforce(net)  # nothing to control
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    norms = method.estimate(net)
    assert len(norms) == 6 and all(0 < v <= 1 + 1e-5 for v in norms.values())


def test_a_peer_trial_runs_and_certifies(tmp_path):
    """A real one-epoch trial on a narrow LipConvNet-5 (4 channels in the first block) from Björck layers: rows written,
    the certified bound finite and the certified accuracies ordered."""
    from svconv.results import read_table
    from svconv.trial import run_trial

    config = TrialConfig(arch="lipconvnet-5-4", method="bjorck", dataset="mnist5k", n_train=32, n_test=16, batch_size=16,
                         epochs=1, emp_lip_n=4, lr=0.01, device="cpu")  # fmt: skip
    row = run_trial(config, tmp_path, sweep="t", progress=False)
    assert row["status"] == "ok", row["error"]
    t = read_table(tmp_path, "trials").iloc[0]
    assert t.method == "bjorck" and 0 < t.lipschitz_bound < 10 and t.control_time_s < 0.5  # no control step
    cra = [t.cra_36, t.cra_72, t.cra_108, t.cra_255]
    assert all(0 <= c <= t.clean_acc for c in cra) and cra == sorted(cra, reverse=True)
    layers = read_table(tmp_path, "layers")
    assert (layers.kind == "peer").sum() == 6 and (layers[layers.kind == "peer"].lipschitz_bound <= 1 + 1e-5).all()


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "blocked,disabled,kept,install",
    [
        ("orthogonium", ["aoc", "bcop", "sll", "cayley"], "bjorck", "pip install orthogonium==0.0.4"),
        ("deel", ["bjorck"], "aoc", "pip install deel-torchlip==1.0.5"),
        ("einops", ["cayley"], "aoc", "pip install orthogonium==0.0.4 einops==0.8.2"),
    ],
)
def test_a_library_that_does_not_import_disables_only_its_methods(blocked, disabled, kept, install):
    """In a fresh interpreter whose ``import BLOCKED`` fails: svconv imports, every method stays listed, the
    library's methods are refused by the config with the package to install, the others build and run."""
    proc = _run(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # import {blocked} now raises ImportError
        import torch
        from svconv.config import TrialConfig
        from svconv.methods import METHODS
        from svconv.models import build_model
        from svconv.models.peer_nets import peer_lipconvnet
        assert {{'aoc', 'bcop', 'sll', 'cayley', 'bjorck'}} <= set(METHODS)
        for m in {disabled!r}:
            try:
                TrialConfig(arch='lipconvnet-5', method=m)
            except ValueError as exc:
                assert {install!r} in str(exc) and repr(m) in str(exc), exc
            else:
                raise AssertionError(m + ' was accepted')
            try:
                build_model('lipconvnet-5', 10, (1, 28, 28), (0.5,), (0.25,), layers=m)
            except ImportError as exc:
                assert {install!r} in str(exc), exc
            else:
                raise AssertionError(m + ' was built')
        TrialConfig(arch='lipconvnet-5', method={kept!r})
        TrialConfig(arch='small-cnn', method='clip')
        net = peer_lipconvnet({kept!r}, 5, 1, 10, (28, 28), init_channels=4)
        assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
        print('ok')
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
