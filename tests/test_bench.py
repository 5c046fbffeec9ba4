"""``svconv bench``: rows, gaps, skipped configurations, the Ray fan-out, the CLI and the pieces under them.

The quick suite runs once (module fixture, through the CLI) and its Parquet rows are read back with
``analysis.load_results``; the other tests reuse those rows. Timings are never asserted on.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa
import pytest
import torch

from analysis.load import load_results
from bench.baselines import numpy_singular_values, torch_singular_values
from bench.grid import LAYER_METHODS, bench_id, expand, parse_grid_args
from bench.run import run_configs
from bench.suites import list_suites, load_suite
from bench.summary import with_ratios
from bench.theory import tt_theory_speedup
from bench.timing import time_calls
from svconv.results.schema import BENCH
from svconv_cli.main import main

SUITES = ("estimators", "quick", "scaling", "seed-fig2", "wrn16-10")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick suite run through the CLI: ``(configs, rows read back, stdout)``."""
    results = tmp_path_factory.mktemp("bench")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "quick", "--results", str(results), "--no-progress"])
    assert code == 0
    return load_suite("quick").configs(), load_results(results).bench, out.getvalue()


def test_quick_suite_writes_well_formed_rows(quick):
    configs, df, stdout = quick
    assert list(df.columns) == BENCH.names
    pa.Table.from_pandas(df, schema=BENCH, preserve_index=False)  # every value has its column's type
    assert len(df) == len(configs) and df["bench_id"].is_unique
    assert set(df["status"]) <= {"ok", "skipped"}
    ok = df[df["status"] == "ok"]
    # every layer method and both model kinds ran, plain and TT
    assert set(ok.loc[ok["scope"] == "layer", "method"]) == set(LAYER_METHODS)
    assert set(ok.loc[ok["scope"] == "model", "method"]) == {"exact", "clip", "soc"}
    assert ok["tt"].any() and (~ok["tt"]).any()
    assert (ok["tt"] == ok["rank"].notna()).all()
    assert (ok["time_median_s"] > 0).all() and (ok["time_iqr_s"] >= 0).all()
    assert (ok["time_min_s"] <= ok["time_median_s"]).all()
    assert (ok["peak_mem_mb"] >= 0).all()  # measured on Linux (VmHWM), never guessed
    assert np.isfinite(ok["value"].astype(float)).all()
    assert (ok["threads"] == 1).all() and (ok["device"] == "cpu").all()
    assert ok["git_commit"].notna().all() and ok["torch_version"].notna().all()
    assert (ok["end_time"] >= ok["start_time"]).all()
    layer = ok[ok["scope"] == "layer"]
    assert (layer["kernel"] == "3x3").all() and (layer["input_size"] == "8x8").all()
    assert layer.loc[layer["method"].isin(["exact", "exact-numpy", "exact-torch", "clip"]), "flops"].gt(0).all()
    skipped = df[df["status"] == "skipped"]
    assert (skipped["method"] == "aol").all() and skipped["reason"].str.contains("TT").all()
    # the summary names every row and the counts
    assert f"{len(df)} rows" in stdout and "vs_numpy" in stdout and "tt_speedup" in stdout


def test_gaps_are_zero_for_exact_methods_and_signed_for_bounds(quick):
    _, df, _ = quick
    ok = df[(df["status"] == "ok") & (df["scope"] == "layer")]
    circ, zeros = ok[ok["padding"] == "circular"], ok[ok["padding"] == "zeros"]
    exact = circ[circ["method"].isin(["exact", "exact-numpy", "exact-torch"])]
    assert len(exact) == 12 and (exact["exact_method"] == "fft").all()
    assert exact["gap"].abs().max() < 1e-12  # float64
    # the three exact routes agree with each other config by config
    key = ["c_in", "stride", "rank"]
    spread = exact.assign(rank=exact["rank"].fillna(-1)).groupby(key)["value"].agg(lambda v: v.max() - v.min())
    assert (spread < 1e-12).all() and len(spread) == 4
    gram = circ[circ["method"] == "gram"]
    assert len(gram) == 4 and (gram["gap"] >= -1e-12).all()
    power = ok[ok["method"].isin(["power", "powerqr"])]
    assert len(power) >= 5 and (power["gap"] <= 1e-12).all()
    # zeros padding: the periodic model on the padded grid bounds the layer from above
    bounds = zeros[zeros["method"].isin(["exact", "gram"])]
    assert len(bounds) == 2 and (bounds["gap"] >= -1e-12).all()
    assert (zeros["exact_method"].isin(["dense", "target"])).all()
    # controllers: distance to the target after one step; AOL is guaranteed 1-Lipschitz
    control = ok[ok["method"].isin(["clip", "division", "fastclip", "aol"])]
    assert (control["exact_method"] == "target").all() and (control["exact_value"] == 1.0).all()
    assert (control.loc[control["method"] == "aol", "gap"] <= 1e-12).all()
    model = df[(df["status"] == "ok") & (df["method"] == "soc")]
    assert len(model) == 2 and (model["gap"] <= 1e-4).all()  # SOC-TT (orthonormal frames at init): a contraction
    assert (model.loc[model["rank"].isna(), "gap"].abs() < 1e-4).all()  # SOC is orthogonal up to the series


def test_theory_and_ratios(quick):
    _, df, _ = quick
    tt = df[(df["status"] == "ok") & (df["scope"] == "layer") & df["tt"]]
    assert np.allclose(tt["theory_speedup"], (8 / 4) ** 3)
    assert tt_theory_speedup(256, 256, 64, 64, (1, 1)) == pytest.approx(64.0)
    ratios = with_ratios(df)
    exact = ratios[(ratios["method"] == "exact") & (ratios["scope"] == "layer") & (ratios["padding"] == "circular")]
    assert exact["vs_numpy"].gt(0).all() and exact["vs_torch"].gt(0).all()
    assert ratios.loc[ratios["tt"] & (ratios["status"] == "ok") & (ratios["method"] == "exact"), "tt_speedup"].gt(0).all()


def test_impossible_configs_are_skipped_with_the_reason(tmp_path):
    grid = {"method": "exact", "channels": 4, "input_size": 6, "stride": [1, 4], "rank": [None, 2, 4, 9], "repeats": 1, "warmup": 0}
    configs = expand(grid) + expand({"method": "power", "channels": 4, "input_size": 4, "device": "cuda", "repeats": 1})
    rows = run_configs(configs, progress=False)
    by = {(r["stride"], r["rank"], r["device"]): r for r in rows}
    assert by[(1, None, "cpu")]["status"] == "ok" and by[(1, 2, "cpu")]["status"] == "ok"
    assert "stride 4 does not divide input_size 6x6" in by[(4, None, "cpu")]["reason"]
    for rank in (4, 9):
        assert by[(1, rank, "cpu")]["status"] == "skipped" and f"rank {rank}" in by[(1, rank, "cpu")]["reason"]
    # a 1x1 conv with a rank between its channel counts: the frames clamp to what the kernel holds
    (one,) = run_configs(expand({"method": "exact", "channels": [[4, 8]], "kernel": 1, "input_size": 4, "rank": 6,
                                 "dtype": "float64", "repeats": 1, "warmup": 0}), progress=False)  # fmt: skip
    assert one["status"] == "ok" and abs(one["gap"]) < 1e-12, one["reason"]
    cuda = by[(1, None, "cuda")]
    assert cuda["status"] == ("ok" if torch.cuda.is_available() else "skipped")
    # a run with skipped rows still succeeds and writes them
    assert main(["bench", "--grid", "method=gram", "channels=4", "input_size=6", "stride=4", "repeats=1",
                 "--results", str(tmp_path), "--no-progress"]) == 0  # fmt: skip
    (row,) = load_results(tmp_path).bench.to_dict("records")
    assert row["status"] == "skipped" and "does not divide" in row["reason"] and row["suite"] == "adhoc"


def test_ray_fanout_returns_the_same_rows(quick):
    import ray

    configs, df, _ = quick
    subset = [c for c in configs if c["scope"] == "layer" and c["stride"] == 1 and c["padding"] == "circular"]
    subset = [c for c in subset if c["method"] in ("exact", "gram", "power", "clip", "aol")]
    assert len(subset) == 10
    temp = tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, namespace="svconv-test-bench", _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    try:
        rows = run_configs(subset, address="local", progress=False)
    finally:
        ray.shutdown()
    local = df.set_index("bench_id")
    assert [r["bench_id"] for r in rows] == [bench_id(c) for c in subset]
    for cfg, row in zip(subset, rows):
        ref = local.loc[row["bench_id"]]
        assert row["method"] == cfg["method"] and row["rank"] == cfg["rank"]
        assert row["status"] == ref["status"], row["reason"]
        if row["status"] == "ok":
            assert row["value"] == pytest.approx(ref["value"], rel=1e-10)
            assert row["gap"] == pytest.approx(ref["gap"], rel=1e-6, abs=1e-12)
            assert row["exact_value"] == pytest.approx(ref["exact_value"], rel=1e-10)
            assert row["flops"] == ref["flops"] and row["time_median_s"] > 0


def test_baselines_match_the_dense_operator():
    from svconv.spectrum import dense_operator

    torch.manual_seed(0)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    for s in (1, 2):
        conv = torch.nn.Conv2d(2, 3, 3, stride=s, padding=1, padding_mode="circular", bias=False).double()
        conv.weight.data.copy_(w)
        ref = torch.linalg.svdvals(dense_operator(conv, (2, 6, 6)))
        ref = ref[: (6 // s) ** 2 * min(3, 2 * s * s)]
        a = np.sort(numpy_singular_values(w, 6, s))[::-1]
        b = torch.sort(torch_singular_values(w, 6, s), descending=True).values
        assert np.allclose(a, ref.numpy(), atol=1e-10) and torch.allclose(b, ref, atol=1e-10)


def test_timing_counts_repeats_and_measures_cpu_peak_memory():
    calls = []

    def fn():
        calls.append(1)
        a = np.ones(16 * 2**20 // 8)  # 16 MiB, touched
        return float(a.sum())

    t = time_calls(fn, "cpu", repeats=3, warmup=2)
    assert len(calls) == 5 and len(t.times) == 3 and t.result == 2.0**21
    assert t.peak_mem_mb is not None and 15 <= t.peak_mem_mb < 64
    with pytest.raises(ValueError, match="repeats"):
        time_calls(fn, repeats=0)


def test_grids_parse_and_check_names():
    grid = parse_grid_args(["method=exact,clip", "channels=16x32", "rank_frac=0.25,0.5", "input_size=8"])
    configs = expand(grid)
    assert len(configs) == 4 and {c["rank"] for c in configs} == {4, 8}
    assert all((c["c_in"], c["c_out"]) == (16, 32) and c["input_size"] == [8, 8] for c in configs)
    with pytest.raises(ValueError, match="method must be one of exact, exact-numpy"):
        expand({"method": "svd"})
    with pytest.raises(ValueError, match="unknown layer grid key"):
        expand({"method": "exact", "chanels": 3})
    assert set(SUITES) <= set(list_suites())
    for name in list_suites():
        assert load_suite(name).configs()  # every shipped suite expands


def test_cli_help_and_unknown_suite(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--grid" in out and "--address" in out and "quick" in out
    assert main(["bench", "no-such-suite"]) == 2
    err = capsys.readouterr().err
    assert "svconv bench: error" in err and all(name in err for name in SUITES)
    assert main(["bench"]) == 2 and "SUITE or --grid" in capsys.readouterr().err
    assert main(["bench", "quick", "--repeats", "0"]) == 2


def test_cli_list_names_every_registered_method_of_each_scope(capsys):
    from bench.grid import LAYER_METHODS, MODEL_METHODS
    from svconv.methods.registry import entries

    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    layer_part, model_part = out.split("layer methods")[1].split("model methods")
    for name, what in LAYER_METHODS.items():
        assert f"  {name} " in layer_part and what in layer_part
    for name in MODEL_METHODS:
        assert f"  {name} " in model_part
    assert "rescale" in LAYER_METHODS and set(LAYER_METHODS) <= set(entries())  # from the registry, not a hand list
