"""The HTML report: built from results of the real pipeline (tiny trials, the quick bench suite),
from synthetic folders, and from empty and partial folders; the CLI's outputs and exit codes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures as F
from analysis.load import load_results
from analysis.paper import load_paper_results
from analysis.report import build_report, kaleido_available, render_report
from analysis.synthetic import write_synthetic_results
from analysis.tables import prepare_trials, summary_tables
from svconv.results import write_rows
from svconv_cli.main import main

SECTIONS = (
    "Overview",
    "Summary tables",
    "TT layers",
    "Clipping speed and estimator accuracy",
    "Pareto fronts",
    "Per-layer spectral norms",
    "Empirical Lipschitz ratios",
    "Training curves",
    "Failed and diverged trials",
)
TINY = dict(dataset="synthetic", arch="small-cnn", n_train=128, n_test=64, epochs=1, batch_size=32, emp_lip_n=8,
            device="cpu", lr=0.05)  # fmt: skip


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> Path:
    """Three ok trials and one failed one from ``run_trial``; the quick bench suite and a 2 × 2 grid
    (channels × input size, so that the time-versus-size figures have data), and two clip-to-target rows,
    from the bench package. Dataset ``synthetic``: balanced classes even in tiny subsets."""
    from bench.grid import expand, parse_grid_args
    from bench.run import run_configs, write_bench_rows
    from bench.suites import load_suite, runner_configs
    from svconv.config import TrialConfig
    from svconv.trial import run_trial

    out = tmp_path_factory.mktemp("real_results")
    for extra in (dict(method="none"), dict(method="clip"), dict(method="clip", rank=4), dict(method="none", fail_at_epoch=1)):
        run_trial(TrialConfig(**{**TINY, **extra}), out, sweep="tiny", progress=False)
    fast = {"repeats": 1, "warmup": 0}
    configs = load_suite("quick").configs(fast)
    configs += expand(parse_grid_args(["method=power", "channels=4,8", "input_size=6,8", "iters=3"]), "grid", fast)
    configs += runner_configs([{"method": ["clip-to-target", "gram"], "strategy": "secant", "solver": "eigh", "channels": 4,
                                "input_size": 6}], "clip-to-target", fast, runner="clip-target")  # fmt: skip
    write_bench_rows(out, run_configs(configs, progress=False))
    return out


def _text(page: str) -> str:
    """The visible text of a page (scripts and styles dropped), whitespace squeezed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def _h2(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_report_from_the_real_pipeline(real_results, tmp_path, capsys):
    out = tmp_path / "report.html"
    rc = main(["report", str(real_results), "-o", str(out), "--format", "html,csv"])
    assert rc == 0
    page = out.read_text()
    printed = capsys.readouterr()
    assert f"report: {out}" in printed.out

    assert _h2(page) == list(SECTIONS)
    n = int(re.search(r'<meta name="svconv-figure-count" content="(\d+)">', page).group(1))
    # speedup, time vs channels, time vs size, memory, gap, time vs achieved norm, Pareto, layers, Lipschitz, curves
    assert n == 10
    assert len(re.findall(r'class="plotly-graph-div"', page)) == n
    assert page.count("Plotly.newPlot(") == n
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # the bundle, once
    # nothing to fetch: no external URL outside scripts (the bundle's strings name plotly.com, never loaded)
    markup = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", page, flags=re.S)
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", markup)
    assert "<script src" not in markup and "<link" not in markup
    assert 'class="missing"' not in page  # every part has data
    assert printed.err == ""

    text = _text(page)
    assert "trials 4 (ok 3, failed 1)" in text
    # small-cnn at rank 4: both convs after the stem are TT, the stem stays dense (to_tt's skip_first)
    assert "synthetic small-cnn 4 2 of 3 net.0" in text
    assert "sweeps tiny" in text and "bench suites clip-to-target, grid, quick" in text
    for toc in ("Speedup versus rank", "Time versus channels", "Time versus input size", "Memory versus rank",
                "Estimator gap versus time", "Time versus achieved norm", "synthetic · small-cnn"):  # fmt: skip
        assert f">{toc}</a>" in page
    # the failed trial is listed with its error; its traceback folded under the last line
    assert "TrialFailure: fail_at_epoch=1" in text
    assert '<details class="error">' in page
    # the aggregated summary: every configuration of the tiny sweep
    summary = pd.read_csv(tmp_path / "report_csv" / "summary_synthetic_small-cnn.csv")
    ours = summary[summary["source"] == "this run"]
    # the failed trial is a configuration of its own (fail_at_epoch is an option): a row of no ok trial
    failing = ours["fail_at_epoch"].notna()
    assert ours.loc[failing, ["method", "n", "n_not_ok"]].values.tolist() == [["none", 0, 1]]
    ours = ours[~failing]
    assert sorted(zip(ours["method"], ours["rank"].fillna(0))) == [("clip", 0), ("clip", 4), ("none", 0)]
    trials = load_results(real_results).trials
    for (method, rank), row in ours.set_index(["method", ours["rank"].fillna(0)]).iterrows():
        t = trials[(trials.method == method) & (trials["rank"].fillna(0) == rank) & (trials.status == "ok")]
        assert row["n"] == len(t) == 1
        assert row["clean_acc_mean"] == pytest.approx(t["clean_acc"].iloc[0])
    failed = pd.read_csv(tmp_path / "report_csv" / "failed_trials.csv")
    assert failed["status"].tolist() == ["failed"] and "fail_at_epoch=1" in failed["error"].iloc[0]
    speed = pd.read_csv(tmp_path / "report_csv" / "bench_speedups.csv")
    assert (speed["speedup"] > 0).all() and set(speed["scope"]) == {"layer", "model"}
    layer = speed[speed["scope"] == "layer"]
    assert (layer["theory"] == (layer["c"] / layer["rank"]) ** 3).all()  # (c/r)^3 beside the measured speedup
    control = pd.read_csv(tmp_path / "report_csv" / "control_pareto.csv")
    assert {"clip-to-target/secant/eigh", "gram"} <= set(control["method"]) and control["on_front"].any()
    assert (control["ratio"] > 0).all() and (control["off"] == (control["ratio"] - 1).abs()).all()


def test_synthetic_report_has_every_figure_and_the_papers_rows(tmp_path):
    write_synthetic_results(tmp_path / "res", 240)
    report = render_report(load_results(tmp_path / "res"), "res")
    assert report.missing == []
    assert _h2(report.html) == list(SECTIONS)
    # 7 bench figures (the zoo suite's among them), a Pareto panel per dataset, 3 figures per dataset × arch
    assert report.n_figures == 7 + 3 + 3 * 9
    # a ranking of the methods per dataset, and options a method does not read left blank
    ranking = report.tables["ranking_cifar10"]
    assert set(ranking["method"]) == {"none", "clip", "division", "fastclip", "gram"} and ranking["#"].tolist()[0] == "1"
    none_rows = re.findall(r'<tr class="">(<td class="text">this run</td><td class="text">none</td>.*?)</tr>', report.html)
    assert none_rows and all(re.findall(r"<td[^>]*>(.*?)</td>", r)[3] == "" for r in none_rows)  # clip_to blank
    # cifar10 · wrn-16-10 is in the papers: their rows sit beside ours, marked as reported by them
    table = report.html.split('id="summary-tables-cifar10-wrn-16-10"')[1].split("</table>")[0]
    paper_rows = re.findall(r'<tr class="paper">(.*?)</tr>', table)
    expected = load_paper_results()
    expected = expected[(expected.dataset == "cifar10") & (expected.arch == "wrn-16-10")]
    assert len(paper_rows) == len(expected) > 0
    assert all("reported by the paper (Senderovich et al. 2022" in r for r in paper_rows)
    assert "this run" in table


def test_summary_aggregates_over_seeds_and_speedup():
    """Mean ± std over seeds on hand-made rows; speedup = full-rank control time ÷ this one's; none has none."""
    base = dict(status="ok", dataset="d", arch="a", clip_to=1.0, lam=0.0, epochs=1, batch_size=8, lr=0.1,
                optimizer="sgd", schedule="cosine", clip_every=1, train_time_s=10.0)  # fmt: skip
    rows = [
        {**base, "trial_id": "1", "method": "clip", "rank": None, "seed": 0, "clean_acc": 90.0, "control_time_s": 4.0},
        {**base, "trial_id": "2", "method": "clip", "rank": None, "seed": 1, "clean_acc": 92.0, "control_time_s": 2.0},
        {**base, "trial_id": "3", "method": "clip", "rank": 4, "seed": 0, "clean_acc": 80.0, "control_time_s": 0.5},
        {**base, "trial_id": "4", "method": "none", "rank": None, "seed": 0, "clean_acc": 95.0, "control_time_s": 1e-4},
        {**base, "trial_id": "5", "method": "clip", "rank": 4, "seed": 1, "status": "failed", "error": "boom"},
    ]
    from svconv.results.schema import TRIALS

    trials = pd.DataFrame(rows).reindex(columns=TRIALS.names)
    (st,) = summary_tables(prepare_trials(trials), load_paper_results())
    ours = st.ours.set_index(["method", st.ours["rank"].fillna(0)])
    assert ours.loc[("clip", 0), "clean_acc_mean"] == 91.0
    assert ours.loc[("clip", 0), "clean_acc_std"] == pytest.approx(np.sqrt(2.0))
    assert ours.loc[("clip", 0), "seeds"] == "0,1"
    assert ours.loc[("clip", 4), "speedup_mean"] == pytest.approx(3.0 / 0.5)
    assert ours.loc[("clip", 4), "n_not_ok"] == 1
    assert np.isnan(ours.loc[("none", 0), "speedup_mean"])
    display, classes = st.display()
    assert "91.00 ±\u00a01.41" in display["Accuracy (%)"].tolist()
    assert display.loc[display["method"] == "none", "clip_to"].tolist() == [""]  # none reads no target
    assert display.loc[display["method"] == "clip", "clip_to"].tolist() == ["1", "1"]
    assert "1 (+1 not ok)" in display["n"].tolist() and set(classes) == {""}


def test_pareto_panel_marks_exactly_the_dominated_configs_and_leaves_out_empty_panels():
    pts = pd.DataFrame(
        {
            "method": ["a", "b", "c", "d"],
            "rank": [None, 8.0, None, 8.0],
            "hover": ["A", "B", "C", "D"],
            "clean_acc_mean": [90.0, 85.0, 80.0, 70.0],
            "ece_mean": [5.0, 2.0, 3.0, 1.0],  # lower is better: C is dominated by B
        }
    )
    for col in ("autoattack_025", "autoattack_05", "autoattack_36", "cra_36", "corruption_acc", "speedup", "compression", "train_hours"):
        pts[f"{col}_mean"] = np.nan
    fig, long, left_out = F.pareto_panel(pts, "d", F.colors_for(pts["method"]), "CPU-hours")
    assert long["x_metric"].unique().tolist() == ["ece"]
    assert dict(zip(long["config"], long["on_front"])) == {"A": True, "B": True, "C": False, "D": True}
    assert [a.text for a in fig.fig.layout.annotations] == ["Accuracy (%) vs ECE (%)"]  # one panel, no empty ones
    assert "training time (CPU-hours)" in left_out and "Certified ε=36/255 (%)" in left_out
    dominated = [t for t in fig.fig.data if t.marker.symbol and t.marker.symbol.endswith("-open") and t.x[0] is not None]
    assert len(dominated) == 1 and list(dominated[0].text) == ["C"] and "dominated" in dominated[0].hovertemplate
    assert dominated[0].marker.color == F.colors_for(pts["method"])["c"]  # still in its method's colour
    symbols = {t.name: t.marker.symbol for t in fig.fig.data if t.x[0] is None}
    assert symbols["full"] != symbols["TT r=8"]
    line = [t for t in fig.fig.data if t.mode == "lines"]
    assert len(line) == 1 and list(line[0].x) == [1.0, 2.0, 5.0]  # the front, joined in order


def test_log_ticks_carry_whole_numbers():
    assert F.log_ticks([4, 8, 16]) == [5.0, 10.0]  # every tick inside the data, with its whole number
    assert F.log_ticks([160]) == [160.0]  # one value: itself, not a crowd of ticks around it
    assert F.log_ticks([0.001, 0.5, 3000]) == [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


def test_control_pareto_greys_exactly_the_dominated_methods():
    """Per shape, a method is dominated when another is at least as fast and at least as close to the target;
    model rows hold the worst layer's ratio in sigma_after already."""
    base = dict(status="ok", suite="clip-to-target", tt=False, device="cpu", dtype="float32", target=2.0)
    layer = dict(scope="layer", c_in=16, c_out=16, input_size="8x8", stride=1)
    rows = [
        {**base, **layer, "method": "fast-far", "time_median_s": 0.1, "sigma_after": 2.6},  # ratio 1.3
        {**base, **layer, "method": "slow-close", "time_median_s": 1.0, "sigma_after": 2.01},  # 1.005
        {**base, **layer, "method": "slower-farther", "time_median_s": 2.0, "sigma_after": 1.9},  # 0.95: dominated
        {**base, **layer, "method": "no-norm", "time_median_s": 0.01, "sigma_after": None},  # not a control row
        {**base, "scope": "model", "arch": "wrn-16-10", "method": "fast-far", "time_median_s": 5.0, "sigma_after": 1.004},
    ]
    from svconv.results.schema import BENCH

    bench = pd.DataFrame(rows).reindex(columns=BENCH.names)
    pts = F.control_points(bench).set_index(["shape", "method"])
    assert pts.loc[("16→16 @8x8", "fast-far"), "ratio"] == pytest.approx(1.3)
    assert pts.loc[("model wrn-16-10", "fast-far"), "ratio"] == pytest.approx(1.004)
    assert pts["on_front"].to_dict() == {
        ("16→16 @8x8", "fast-far"): True, ("16→16 @8x8", "slow-close"): True, ("16→16 @8x8", "slower-farther"): False,
        ("model wrn-16-10", "fast-far"): True,
    }  # fmt: skip
    fig = F.control_pareto(bench, F.colors_for(bench["method"]))
    grey = [t for t in fig.fig.data if t.name == "dominated"]
    assert len(grey) == 1 and list(grey[0].text) == ["slower-farther"]
    assert sorted(t.name for t in fig.fig.data if t.name != "dominated") == ["fast-far", "fast-far", "slow-close"]
    assert [a.text for a in fig.fig.layout.annotations] == ["16→16 @8x8", "model wrn-16-10"]
    assert isinstance(F.control_pareto(bench[bench["method"] == "no-norm"], {}), F.Missing)


def test_control_points_facet_a_model_per_input_size_only_when_it_has_several():
    base = dict(status="ok", suite="clip-to-target", tt=False, device="cpu", dtype="float32", target=1.0, scope="model")
    rows = [
        {**base, "arch": "resnet18", "input_size": "32x32", "method": "m", "time_median_s": 1.0, "sigma_after": 1.005},
        {**base, "arch": "resnet18", "input_size": "224x224", "method": "m", "time_median_s": 9.0, "sigma_after": 1.002},
        {**base, "arch": "wrn-16-10", "input_size": "32x32", "method": "m", "time_median_s": 5.0, "sigma_after": 1.004},
    ]
    from svconv.results.schema import BENCH

    pts = F.control_points(pd.DataFrame(rows).reindex(columns=BENCH.names))
    assert sorted(pts["shape"]) == ["model resnet18 @224x224", "model resnet18 @32x32", "model wrn-16-10"]


def test_empty_folder_says_what_is_missing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "empty"), "-o", str(out), "--format", "html,csv"]) == 0
    page = out.read_text()
    assert _h2(page) == list(SECTIONS)
    text = _text(page)
    assert "No trials in" in text and "svconv sweep run" in text and "svconv bench" in text
    for what in ("Summary tables: need trials", "Clipping speed: needs microbenchmark rows",
                 "Pareto fronts: need trials with status ok (there are no trials)", "Training curves: need trials"):  # fmt: skip
        assert what in text
    assert "Traceback" not in page and 'content="0"' in page
    err = capsys.readouterr().err
    assert "part(s) without data" in err and "Traceback" not in err


def test_partial_folders(tmp_path):
    """Bench only; trials whose epochs and layers are gone; trials that all failed."""
    full = write_synthetic_results(tmp_path / "full", 40, failed_every=0)
    bench_only = tmp_path / "bench_only"
    shutil.copytree(full / "bench", bench_only / "bench")
    report = render_report(load_results(bench_only), "b")
    assert report.n_figures == 7 and any(m.startswith("Pareto fronts: need trials") for m in report.missing)

    no_history = tmp_path / "no_history"
    shutil.copytree(full / "trials", no_history / "trials")
    report = render_report(load_results(no_history), "n")
    text = _text(report.html)
    assert "needs per-layer spectral norms (layers table)" in text
    assert "needs per-epoch history (epochs table)" in text
    assert "Clipping speed: needs microbenchmark rows" in text
    assert report.n_figures == 3 + 9  # Pareto per dataset, Lipschitz histograms per dataset × arch

    failed = tmp_path / "failed"
    write_rows(failed, "trials", "x", [dict(trial_id="t1", status="failed", error="ValueError: bad\n", dataset="d",
                                            arch="a", method="clip", seed=0)])  # fmt: skip
    report = render_report(load_results(failed), "f")
    text = _text(report.html)
    assert "none of 1: 1 failed" in text and "ValueError: bad" in text
    assert report.n_figures == 0


def test_cli_errors_and_formats(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "RESULTS_DIR must be an existing folder" in capsys.readouterr().err
    (tmp_path / "r").mkdir()
    assert main(["report", str(tmp_path / "r"), "--format", "html,pdf"]) == 2
    assert "--format must be a comma-separated list of html, csv, png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    # default output: RESULTS_DIR/report.html; png without kaleido is skipped with a warning, exit 0
    write_synthetic_results(tmp_path / "r", 12, with_bench=False)
    assert main(["report", str(tmp_path / "r"), "--format", "csv,png"]) == 0
    out = capsys.readouterr()
    assert not (tmp_path / "r" / "report.html").exists()  # html not asked for
    combos = load_results(tmp_path / "r").trials.groupby(["dataset", "arch"]).ngroups
    assert len(list((tmp_path / "r" / "report_csv").glob("summary_*.csv"))) == combos > 1
    if kaleido_available():
        assert len(list((tmp_path / "r" / "report_png").glob("*.png"))) > 0
    else:
        assert "PNG export needs the optional package kaleido" in out.err
    assert main(["report", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()


def test_build_report_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="RESULTS_DIR"):
        build_report(tmp_path / "missing", tmp_path / "r.html")
    with pytest.raises(ValueError, match="html, csv, png"):
        build_report(tmp_path, tmp_path / "r.html", formats=("svg",))


def test_damaged_files_are_listed_under_failures_and_block_nothing(tmp_path, capsys):
    res = write_synthetic_results(tmp_path / "r", 12, with_bench=False, failed_every=0, chunk=None)  # per-trial files
    (res / "trials" / "syn000003.parquet").write_bytes(b"")  # a killed writer
    cut = res / "epochs" / "syn000004.parquet"
    cut.write_bytes(cut.read_bytes()[:200])  # a truncated copy
    results = load_results(res)
    assert len(results.trials) == 11 and {d.path.name for d in results.damaged} == {"syn000003.parquet", cut.name}
    report = render_report(results, "r")
    assert list(report.tables["damaged_files"]["file_id"]) == ["syn000003", "syn000004"]
    text = _text(report.html)
    assert "Damaged and duplicate results files" in text and str(cut) in text and "0 bytes" in text
    assert main(["report", str(res), "--format", "html,csv"]) == 0  # the report is written; nothing exits 2
    assert "damaged_files" in " ".join(p.name for p in (res / "report_csv").iterdir())


def test_method_uses_reads_the_registry():
    """Target options belong to the methods that step towards a target; λ to TT ranks only."""
    from analysis.options import method_uses
    from svconv.methods import METHODS

    steps = {m for m in METHODS if method_uses(m, "clip_to")}
    assert {"clip", "division", "fastclip", "gram", "rescale"} <= steps
    assert not steps & {"none", "aol", "soc", "aoc", "bcop", "sll", "cayley", "bjorck"}
    assert method_uses("soc", "lam", 16) and not method_uses("clip", "lam", None) and not method_uses("clip", "lam", float("nan"))
    assert method_uses("none", "lr") and method_uses("none", "epochs")
