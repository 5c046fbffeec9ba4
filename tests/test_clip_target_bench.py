"""The clip-to-target bench suite (issue 11): configs from the suite file and the command line, and real
rows on tiny layers and a tiny model, written to Parquet and read back with what each method achieved."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.clip_target import CT_METHOD, METHODS, expand_grid, method_label
from bench.run import run_configs, write_bench_rows
from bench.suites import load_suite, runner_configs
from svconv.results import read_table
from svconv.spectrum import CLIP_SOLVERS, CLIP_STRATEGIES
from svconv_cli.main import main

FAST = {"repeats": 1, "warmup": 0, "dtype": "float64", "threads": 1}
TOL = 0.01
STRATEGIES = set(CLIP_STRATEGIES)
SOLVERS = set(CLIP_SOLVERS) - {"auto"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    """Every method on tiny plain and TT layers (stride 1 and 2), the guarantee, and a tiny model; real Parquet."""
    grids = [
        {"channels": [[6, 8]], "input_size": 8, "stride": [1, 2], "rank": [None, 3], **FAST},
        {"method": CT_METHOD, "strategy": "secant", "guarantee": True, "channels": [[6, 8]], "input_size": 8, "stride": [1, 2], **FAST},
        {"scope": "model", "arch": "small-cnn", "input_shape": [3, 16, 16], "rank": [None, 4], "method": [CT_METHOD, "division"],
         "solver": "eigh", **FAST},
        {"method": [CT_METHOD, "clip-pass"], "strategy": "secant", "solver": "eigh", "drift": 0.1, "channels": [[6, 8]],
         "input_size": 8, "rank": [None, 3], **FAST},
    ]  # fmt: skip
    configs = runner_configs(grids, "test-ctt", runner="clip-target")
    out = tmp_path_factory.mktemp("ctt")
    write_bench_rows(out, run_configs(configs, progress=False))
    return read_table(out, "bench")


def test_every_row_records_what_it_achieved(rows):
    assert (rows["status"] == "ok").all(), rows.loc[rows["status"] != "ok", ["method", "rank", "reason"]].to_string()
    assert set(rows["suite"]) == {"test-ctt"} and rows["bench_id"].is_unique
    for col in ("sigma_after", "target", "passes", "rel_change", "time_median_s", "peak_mem_mb", "value", "gap"):
        assert rows[col].notna().all(), col
    assert (rows["target"] == 1.0).all() and (rows["time_median_s"] > 0).all() and (rows["rel_change"] >= 0).all()
    layer = rows[rows["scope"] == "layer"]
    labels = set(layer["method"])
    for strategy in STRATEGIES:
        for solver in SOLVERS:
            assert f"{CT_METHOD}/{strategy}/{solver}" in labels
    assert {"clip-pass", "division", "fastclip", "gram"} <= labels
    assert set(layer["tt"]) == {False, True} and set(layer["stride"]) == {1, 2}
    # layer rows: the exact norm of the layer's own operator after control, beside its target
    assert (layer["value"] == layer["sigma_after"]).all() and (layer["exact_method"] == "target").all()
    # a random kernel is far above the target, so every method changed it
    assert (layer["rel_change"] > 0).all()


def test_drift_rows_time_the_control_step_after_a_clip_and_a_random_step(rows):
    drifted = rows[rows["method"].str.endswith("/drift=0.1")]
    assert sorted(drifted["method"]) == sorted([f"{CT_METHOD}/secant/eigh/drift=0.1", "clip-pass/drift=0.1"] * 2)
    ct = drifted[drifted["method"].str.startswith(CT_METHOD)]
    assert ((ct["sigma_after"] / ct["target"] - 1).abs() <= TOL + 1e-9).all()
    # the drifted kernel was clipped first: a 10 % step leaves it near the target, not at the random kernel's norm
    one_pass = drifted[drifted["method"].str.startswith("clip-pass")]
    assert (one_pass["sigma_after"] / one_pass["target"] < 1.3).all()


def test_clip_to_target_lands_within_tol_or_spends_every_pass(rows):
    ct = rows[rows["method"].str.startswith(CT_METHOD)]
    assert len(ct) > 0
    ratio = ct["sigma_after"] / ct["target"]
    ratio = ratio.where(ct["scope"] == "layer", ct["sigma_after"])  # model rows hold the worst ratio already
    inside = (ratio - 1).abs() <= TOL + 1e-9
    guarantee = ct["method"].str.contains("/guarantee")
    # the guarantee rescales below the target; the matmul solver stops on a certified upper bound, so the
    # true norm may sit under the band but never above it
    matmul = ct["method"].str.contains("/matmul")
    below_ok = (guarantee | matmul) & (ratio <= 1 + TOL + 1e-9) & (ratio >= 1 - 5 * TOL)
    done = inside | below_ok | (ct["passes"] == ct["iters"])
    assert done.all(), ct.loc[~done, ["method", "c_in", "stride", "rank", "sigma_after", "passes", "iters"]].to_string()
    assert (ratio[guarantee] <= 1 + 1e-12).all()
    assert guarantee.sum() == 2 * len(SOLVERS)  # secant, each solver, stride 1 and 2
    # one plain pass stays well above the target: what clipping to a target is for
    one = rows[(rows["method"] == "clip-pass") & (rows["scope"] == "layer")]
    assert (one["sigma_after"] > 1 + TOL).all() and (one["passes"] == 1).all()


def test_model_rows(rows):
    model = rows[rows["scope"] == "model"]
    expected = [(f"{CT_METHOD}/{s}/eigh", r) for s in STRATEGIES for r in (0, 4)] + [("division", 0), ("division", 4)]
    assert sorted(zip(model["method"], model["rank"].fillna(0))) == sorted(expected)
    assert (model["arch"] == "small-cnn").all() and model["passes"].notna().all()
    # model value: the worst layer's norm; sigma_after: that over the target
    assert (model["sigma_after"] == model["value"] / model["target"]).all()


def test_configs_from_the_suite_file():
    suite = load_suite("clip-to-target")
    assert suite.runner == "clip-target"
    configs = suite.configs({"repeats": 1})
    assert all(c["runner"] == "clip-target" and c["repeats"] == 1 for c in configs)
    layer = [c for c in configs if c["scope"] == "layer"]
    shapes = {(c["c_in"], c["c_out"], c["input_size"][0], c["stride"]) for c in layer}
    assert shapes == {(16, 160, 32, 1), (160, 160, 32, 1), (160, 320, 32, 2), (320, 320, 16, 1), (320, 640, 16, 2), (640, 640, 8, 1)}
    for shape in shapes:
        here = {method_label(c) for c in layer if (c["c_in"], c["c_out"], c["input_size"][0], c["stride"]) == shape}
        assert {f"{CT_METHOD}/{s}/{v}" for s in STRATEGIES for v in SOLVERS} <= here
        assert {"clip-pass", "division", "fastclip", "gram"} <= here
        # issue 23: the default solver, and the control step after drift beside one pass on the same kernel
        drifted = {f"{CT_METHOD}/secant/auto/drift={d}" for d in (0.05, 0.2)} | {f"clip-pass/drift={d}" for d in (0.05, 0.2)}
        assert {f"{CT_METHOD}/secant/auto"} | drifted <= here
    model = [c for c in configs if c["scope"] == "model"]
    wrn = [c for c in model if c["arch"] == "wrn-16-10"]
    assert {c["rank"] for c in wrn} == {None, 192, 256, 320} and {c["method"] for c in wrn} == set(METHODS)
    assert {method_label(c) for c in wrn if c["rank"] is None} >= {f"{CT_METHOD}/secant/auto", f"{CT_METHOD}/secant/auto/drift=0.05", "clip-pass/drift=0.05"}
    resnet = {(tuple(c["input_shape"]), method_label(c)) for c in model if c["arch"] == "resnet18"}
    assert resnet == {(s, m) for s in ((3, 32, 32), (3, 64, 64)) for m in (f"{CT_METHOD}/secant/auto", "clip-pass")}


def test_grid_errors_name_the_key():
    with pytest.raises(ValueError, match="strategy must be one of"):
        expand_grid({"method": CT_METHOD, "strategy": "newton"}, "x")
    with pytest.raises(ValueError, match="solver must be one of"):
        expand_grid({"method": CT_METHOD, "solver": "svd"}, "x")
    with pytest.raises(ValueError, match="method must be one of clip-to-target"):
        expand_grid({"method": "clip"}, "x")
    with pytest.raises(ValueError, match=r"tol must be a number in \(0, 1\)"):
        expand_grid({"method": CT_METHOD, "tol": 0}, "x")
    with pytest.raises(ValueError, match="max_passes must be an int >= 1"):
        expand_grid({"method": CT_METHOD, "max_passes": 0}, "x")
    with pytest.raises(ValueError, match=r"drift must be a number in \[0, 1\)"):
        expand_grid({"method": CT_METHOD, "drift": 1.5}, "x")
    with pytest.raises(ValueError, match="runner must be one of grid, clip-target"):
        runner_configs([{"method": "gram"}], "x", runner="other")
    # non-clip methods ignore the clip-to-target keys: one config each
    configs = expand_grid({"method": ["gram", CT_METHOD], "strategy": "secant", "solver": ["eigh", "matmul"], "channels": 4}, "x")
    assert sorted(method_label(c) for c in configs) == [f"{CT_METHOD}/secant/eigh", f"{CT_METHOD}/secant/matmul", "gram"]


def test_cli_grid_with_the_clip_target_runner(tmp_path, capsys):
    rc = main(["bench", "--grid", "runner=clip-target", "method=clip-to-target,gram", "strategy=secant", "solver=eigh",
               "channels=4", "input_size=4", "dtype=float64", "--repeats", "1", "--warmup", "0", "--results", str(tmp_path),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    got = read_table(tmp_path, "bench")
    assert sorted(got["method"]) == [f"{CT_METHOD}/secant/eigh", "gram"] and (got["suite"] == "adhoc").all()
    assert math.isfinite(got["sigma_after"].max())
    assert "clip-to-target/secant/eigh" in capsys.readouterr().out
