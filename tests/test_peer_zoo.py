"""The Lipschitz zoo: the sweep spec over every 1-Lipschitz method, and the bench suite timing each layer type."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.suites import load_suite
from bench.zoo import expand_grid, layer_types, padding_of
from svconv.layers.peers import PEERS
from svconv.methods import METHODS
from svconv.methods.parametrized import _Parametrized
from sweeps.spec import load_spec

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "lipschitz-zoo.yaml"


def test_the_zoo_sweep_has_every_lipschitz_method_at_two_sizes_and_three_seeds():
    """Every registered method whose layers are the control (no control step: aol, soc and the peers) appears,
    each at two architectures and seeds 0-2, on CIFAR-10 with one epoch budget and one recipe."""
    lipschitz = {name for name, cls in METHODS.items() if issubclass(cls, _Parametrized)}
    assert lipschitz == {"aol", "soc", *PEERS}
    spec = load_spec(SPEC)
    configs = [t.config for t in spec.trials]
    assert len(configs) == len(lipschitz) * 2 * 3 == 42
    assert {c.method for c in configs} == lipschitz
    archs = {m: sorted({c.arch for c in configs if c.method == m}) for m in lipschitz}
    for m in ("soc", *PEERS):
        assert archs[m] == ["lipconvnet-10", "lipconvnet-5"], (m, archs[m])
    assert archs["aol"] == ["aol-medium", "aol-small"]
    assert Counter((c.method, c.arch) for c in configs) == Counter({k: 3 for k in Counter((c.method, c.arch) for c in configs)})
    assert {c.seed for c in configs} == {0, 1, 2}
    for field in ("dataset", "epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay"):
        assert len({getattr(c, field) for c in configs}) == 1, field
    assert configs[0].dataset == "cifar10" and configs[0].epochs == 100
    assert len({t.trial_id for t in spec.trials}) == 42


def test_the_zoo_suite_expands_to_every_layer_type_with_its_own_padding():
    suite = load_suite("zoo")
    configs = suite.configs()
    assert suite.runner == "zoo" and len(configs) == 2 * len(layer_types())
    assert set(layer_types()) == {"conv", "soc", "aol", *PEERS}
    for cfg in configs:
        assert cfg["runner"] == "zoo" and cfg["padding"] == padding_of(cfg["method"]) and cfg["batch"] == 16
    assert {c["method"]: c["padding"] for c in configs}["aoc"] == "circular"
    assert {c["method"]: c["padding"] for c in configs}["bjorck"] == "zeros"
    with pytest.raises(ValueError, match="layer must be one of conv, soc, aol, aoc, bcop, sll, cayley, bjorck; got 'lot'"):
        expand_grid({"layer": "lot"}, "t")
    with pytest.raises(ValueError, match="batch must be an int >= 1"):
        expand_grid({"layer": "conv", "batch": 0}, "t")
    with pytest.raises(ValueError, match="square odd 2-D kernels"):
        expand_grid({"layer": "conv", "kernel": 2}, "t")


def test_each_layer_type_runs_one_training_step_and_writes_a_bench_row(tmp_path):
    """Real rows: every layer type at 4 channels on 4x4 maps, timed (one call), its peak memory, and the
    parameter count as value; the rows read back from Parquet."""
    from bench.run import run_configs, write_bench_rows
    from svconv.results import read_table

    configs = expand_grid({"channels": 4, "input_size": 4, "batch": 2, "repeats": 1, "warmup": 0}, "zoo-test")
    rows = run_configs(configs, progress=False)
    assert [r["status"] for r in rows] == ["ok"] * len(layer_types()), [(r["method"], r["reason"]) for r in rows]
    for r in rows:
        assert r["time_median_s"] > 0 and r["value"] >= 1 and r["c_in"] == r["c_out"] == 4
    write_bench_rows(tmp_path, rows)
    df = read_table(tmp_path, "bench")
    assert sorted(df.method) == sorted(layer_types()) and (df.suite == "zoo-test").all()


def test_epoch_time_bench_times_lipconvnet_with_every_peer():
    """bench/epoch_time.py (the seconds per epoch that `sweep run --dry-run` prices trials with) has a LipConvNet
    cell per peer whose library imports, beside SOC and SOC-TT."""
    from bench.epoch_time import cells, lipconvnet_methods

    assert lipconvnet_methods() == ("soc", *PEERS)
    grid = cells("wrn-10-2", "lipconvnet-5", 8, ("none",), lipconvnet_methods())
    lip = [(c["method"], c["rank"]) for c in grid if c["arch"] == "lipconvnet-5"]
    assert lip == [("soc", None), *((m, None) for m in PEERS), ("soc", 8)]
    assert cells("wrn-10-2", "lipconvnet-5", None, ("none",)) == [
        {"arch": "lipconvnet-5", "method": "soc", "rank": None}, {"arch": "wrn-10-2", "method": "none", "rank": None}
    ]
