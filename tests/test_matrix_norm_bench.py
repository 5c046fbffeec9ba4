"""The ``matrix-norm`` bench runner (the power method notebook's table): the shipped suite expands, a tiny grid
runs through the CLI to real Parquet rows and the notebook table, and bad grids are refused naming the key."""

from __future__ import annotations

import pytest

from bench.matrix_norm import flops, main as table_main, notebook_table
from bench.suites import load_suite, runner_configs
from svconv.results import read_table
from svconv_cli.main import main


def test_the_suite_expands_to_the_notebooks_sizes_and_three_methods():
    suite = load_suite("matrix-norm")
    configs = suite.configs()
    assert suite.runner == "matrix-norm" and len(configs) == 4 * 3
    assert sorted({c["c_in"] for c in configs}) == [10, 100, 1000, 5000] and all(c["c_in"] == c["c_out"] for c in configs)
    assert {c["method"] for c in configs} == {"matrix-svd", "matrix-svd-numpy", "matrix-power"}
    assert {c["iters"] for c in configs if c["method"] == "matrix-power"} == {100}
    assert all(c["iters"] is None for c in configs if c["method"] != "matrix-power")
    assert all(c["runner"] == "matrix-norm" and c["dtype"] == "float32" and c["kernel"] == [1, 1] for c in configs)


def test_flops_by_hand():
    assert flops("matrix-svd", 10, None) == 21 * 1000
    assert flops("matrix-power", 10, 7) == 4 * 100 * 7


def test_a_tiny_grid_runs_to_parquet_and_the_notebook_table(tmp_path, capsys):
    rc = main(["bench", "--grid", "runner=matrix-norm", "n=4,12", "iters=300", "dtype=float64", "--repeats", "1",
               "--warmup", "0", "--results", str(tmp_path), "--no-progress"])  # fmt: skip
    assert rc == 0
    got = read_table(tmp_path, "bench")
    assert len(got) == 6 and set(got["status"]) == {"ok"} and set(got["exact_method"]) == {"dense"}
    svd = got[got["method"] != "matrix-power"]
    assert (svd["gap"].abs() < 1e-12).all()  # float64 SVD against float64 svdvals
    power = got[got["method"] == "matrix-power"]
    assert (power["gap"] <= 1e-12).all() and (power["gap"] > -1e-2).all()  # a lower estimate, close after 300 steps
    assert (got["time_median_s"] > 0).all() and set(got["c_in"]) == {4, 12}
    table = notebook_table(got)
    assert "| n " in table and "memory of W" in table and "0.128 KB (float64)" in table and "1.15 KB (float64)" in table
    assert table.index("time matrix-svd ") < table.index("time matrix-power")
    capsys.readouterr()
    assert table_main([str(tmp_path), "--suite", "adhoc"]) == 0
    assert capsys.readouterr().out.strip() == table


@pytest.mark.parametrize(
    "grid, match",
    [({}, "needs 'n'"), ({"n": 0}, "n must be an int >= 1"), ({"n": 4, "method": "power"}, "method must be one of"),
     ({"n": 4, "padding": "reflect"}, "unknown matrix-norm grid key"), ({"n": 4, "iters": 0}, "iters")],
)
def test_bad_grids_name_the_key(grid, match):
    with pytest.raises(ValueError, match=match):
        runner_configs([grid], "t", runner="matrix-norm")
