"""The ``soc-tt`` bench runner (Senderovich et al. 2022, Fig. 6): the shipped suite expands, a tiny grid runs
through the CLI to real Parquet rows and a figure, and bad grids are refused naming the key."""

from __future__ import annotations

import pytest

from bench.soc_tt import flops
from bench.suites import load_suite, runner_configs
from svconv.results import read_table
from svconv_cli.main import main


def test_the_suite_expands_to_channels_times_ranks():
    suite = load_suite("soc-tt")
    configs = suite.configs()
    assert suite.runner == "soc-tt" and len(configs) == 5 * 5
    assert {c["c_in"] for c in configs} == {64, 128, 256, 512, 1024} and all(c["c_in"] == c["c_out"] for c in configs)
    assert {c["rank"] for c in configs} == {None, 32, 64, 128, 256}
    assert all(c["runner"] == "soc-tt" and c["batch"] == 16 and c["padding"] == "zeros" for c in configs)
    assert len(suite.configs({"repeats": 1})) == 25 and suite.configs({"repeats": 1})[0]["repeats"] == 1


def test_flops_by_hand():
    """SOC on 8 channels, 3x3, 4x4 map: 12 convs of 8·8·9 multiply-adds per pixel; SOC-TT at rank 2 adds 2·8·2."""
    assert flops(8, None, 3, 16) == 12 * 2 * 8 * 8 * 9 * 16
    assert flops(8, 2, 3, 16, batch=3) == 3 * 16 * (12 * 2 * 2 * 2 * 9 + 2 * 2 * 8 * 2)


def test_a_tiny_grid_runs_to_parquet_and_a_figure(tmp_path, capsys):
    html = tmp_path / "soc.html"
    rc = main(["bench", "--grid", "runner=soc-tt", "channels=4,8", "rank=null,2,8", "input_size=4", "dtype=float64",
               "--repeats", "1", "--warmup", "0", "--results", str(tmp_path), "--no-progress", "--figures", str(html)])  # fmt: skip
    assert rc == 0
    got = read_table(tmp_path, "bench").sort_values(["c_in", "rank"], na_position="first")
    assert len(got) == 6 and set(got["method"]) == {"soc/batch=1"}
    skipped = got[got["status"] == "skipped"]
    assert list(zip(skipped["c_in"], skipped["rank"])) == [(4, 8), (8, 8)] and skipped["reason"].str.contains("reaches").all()
    ok = got[got["status"] == "ok"]
    assert len(ok) == 4 and (ok["time_median_s"] > 0).all()
    plain = ok[ok["rank"].isna()]
    assert ((plain["value"] - 1).abs() < 1e-8).all()  # the SOC is orthogonal: ||f(x) - f(0)|| = ||x||
    assert (ok.loc[ok["rank"].notna(), "value"] <= 1 + 1e-8).all()  # SOC-TT: orthonormal frames, a contraction
    tt = ok[ok["rank"] == 2]
    assert (tt["theory_speedup"] > 1).all() and (tt["flops"] < plain["flops"].to_numpy()).all()
    assert "TT speedup versus channels" in html.read_text()
    assert "soc/batch=1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "grid, match",
    [
        ({"channels": [[4, 8]]}, "channels"),
        ({"padding": "reflect"}, "padding"),
        ({"method": "clip"}, "method"),
        ({"batch": 0}, "batch"),
        ({"stride": 2}, "stride"),
    ],
)
def test_bad_grids_name_the_key(grid, match):
    with pytest.raises(ValueError, match=match):
        runner_configs([grid], "t", runner="soc-tt")
