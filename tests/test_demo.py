"""The demo sweep (`make demo`): its spec, its networks on mnist5k's input, and that it tells the story:
1-Lipschitz networks certify (certified accuracy > 0) where the clipped CNN does not, so the report's
Pareto front of accuracy against certified accuracy holds a certified point."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from svconv.models import build_model
from sweeps.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sweeps" / "demo.yaml"
LIPSCHITZ_METHODS = ("aol", "soc")  # methods whose networks are 1-Lipschitz by construction


def demo_configs():
    return [t.config for t in load_spec(DEMO).trials]


def test_demo_spec_mixes_controlled_and_1_lipschitz_networks_on_mnist5k():
    configs = demo_configs()
    assert all(c.dataset == "mnist5k" for c in configs)
    methods = {c.method for c in configs}
    assert {"clip", "division"} <= methods
    lipschitz = [c for c in configs if c.method in LIPSCHITZ_METHODS]
    # an AOL net, LipConvNet with SOC and with SOC-TT
    assert {c.method for c in lipschitz} == {"aol", "soc"}
    assert any(c.method == "soc" and c.rank is None for c in lipschitz)
    assert any(c.method == "soc" and c.rank is not None for c in lipschitz)
    assert any(c.method == "aol" and c.loss == "aol-offset" for c in lipschitz)  # AOL trains with its own loss


def test_make_demo_runs_the_demo_spec():
    target = re.search(r"^demo:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S).group(0)
    assert "sweep run sweeps/demo.yaml" in target and "svconv report" in target


def test_every_demo_network_takes_mnist5k_images():
    """Each architecture of the demo builds for 1x28x28 inputs and gives 10 scores (no trial fails on shape)."""
    torch.manual_seed(0)
    for c in {(c.arch, c.rank): c for c in demo_configs()}.values():
        model = build_model(c.arch, 10, (1, 28, 28), (0.13,), (0.31,), rank=c.rank).eval()
        with torch.no_grad():
            assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10), c.arch


@pytest.mark.slow
def test_a_short_demo_run_certifies_and_the_pareto_front_holds_a_certified_point(tmp_path):
    """The demo's AOL trial and its plain CNN, cut to one epoch on 1,000 images, through ``run_trial`` and the
    report: the AOL net certifies test images at 36/255 (about 20 % here), the CNN none, and the front of
    accuracy against certified accuracy has both."""
    from analysis import load_results
    from analysis.report import render_report
    from svconv.trial import run_trial

    configs = demo_configs()
    aol = next(c for c in configs if c.method == "aol")
    cnn = next(c for c in configs if c.arch == "small-cnn" and c.method == "none" and c.rank is None)
    rows = {}
    for c in (aol, cnn):
        short = dataclasses.replace(c, epochs=1, n_train=1000, n_test=200, emp_lip_n=8, seed=0)
        rows[c.method] = run_trial(short, tmp_path, sweep="demo-test", progress=False)
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["aol"]["lipschitz_bound"] == pytest.approx(1.0, abs=1e-3)  # AOL: 1-Lipschitz, inputs in [0, 1]
    assert rows["aol"]["cra_36"] > 0
    assert rows["none"]["cra_36"] < rows["aol"]["cra_36"]

    points = render_report(load_results(tmp_path)).tables["pareto_points"]
    front = points[(points["x_metric"] == "cra_36") & points["on_front"]]
    assert set(front["method"]) == {"aol", "none"} and (front["x"] > 0).any()
