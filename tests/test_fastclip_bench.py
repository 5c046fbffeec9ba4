"""The estimators bench suite on FastClip's Fig. 1 settings (Boroojeny et al. 2024): reflect and replicate padding,
5x5 kernels. Estimates are compared with the dense truth, bounds stay bounds, the exact routines say why not."""

from __future__ import annotations

from bench.grid import expand
from bench.run import run_configs
from bench.suites import load_suite


def test_the_estimators_suite_covers_fig1_paddings_and_5x5_kernels():
    configs = load_suite("estimators").configs()
    geometry = {(c["padding"], tuple(c["kernel"]), c["stride"]) for c in configs}
    for padding in ("reflect", "replicate"):
        for kernel in ((3, 3), (5, 5)):
            assert {(padding, kernel, 1), (padding, kernel, 2)} <= geometry
    fig1 = [c for c in configs if c["padding"] in ("reflect", "replicate")]
    assert {"power", "powerqr", "gram", "clip", "division", "fastclip", "aol"} <= {c["method"] for c in fig1}
    assert {"circular", "zeros"} <= {c["padding"] for c in configs if c["kernel"] == [5, 5]}


def test_reflect_and_replicate_rows_compare_estimates_with_the_dense_truth_and_keep_bounds_bounds():
    common = {"channels": 3, "input_size": 6, "dtype": "float64", "repeats": 1, "warmup": 0}
    grids = [
        {**common, "padding": "reflect", "kernel": 3, "stride": 1},
        {**common, "padding": "replicate", "kernel": 5, "stride": 2},
    ]
    configs = []
    for grid in grids:
        configs += expand({**grid, "method": ["exact", "gram"]})
        configs += expand({**grid, "method": ["power", "powerqr"], "iters": 200})
        configs += expand({**grid, "method": "fastclip", "iters": 20})
    rows = {(r["padding"], r["method"]): r for r in run_configs(configs, progress=False)}
    assert len(rows) == 10
    for padding in ("reflect", "replicate"):
        exact = rows[(padding, "exact")]
        assert exact["status"] == "skipped" and "periodic model" in exact["reason"]
        gram = rows[(padding, "gram")]
        assert gram["status"] == "ok" and gram["exact_method"] == "dense" and gram["gap"] >= -1e-12  # an upper bound
        for method in ("power", "powerqr"):  # lower estimates of the dense norm, close after 200 steps
            r = rows[(padding, method)]
            assert r["status"] == "ok" and r["exact_method"] == "dense", r["reason"]
            assert -1e-3 < r["gap"] <= 1e-12, (padding, method, r["gap"])
        fc = rows[(padding, "fastclip")]
        assert fc["status"] == "ok" and fc["exact_method"] == "target" and fc["value"] < 1.05  # true norm after 20 steps
