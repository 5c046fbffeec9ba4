"""Numbers a user can trust, on real Parquet files: every aggregate belongs to one configuration (all its
options, not only the config columns), damaged and copied files are listed and left out, non-finite
metrics are flagged instead of averaged, and trials that did not learn are marked and kept off the fronts."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import load_results
from analysis.paper import load_paper_results
from analysis.report import render_report
from analysis.tables import aggregate, prepare_trials, summary_tables, varying_key
from svconv.config import TrialConfig
from svconv.metrics.learned import LEARNED_ACC_MARGIN, LEARNED_LOSS_DROP, trial_learned
from svconv.results import canonical_json, write_rows
from svconv.results.schema import CONFIG_FIELDS


def _row(cfg: TrialConfig, **metrics) -> dict:
    """A trials row as run_trial writes it (config columns, config_json), with the given metrics."""
    tid = cfg.trial_id("trust")
    return {"trial_id": tid, "sweep": "trust", "status": "ok", **{n: getattr(cfg, n) for n, _ in CONFIG_FIELDS},
            "config_json": canonical_json(cfg.to_dict()), "clean_acc": 90.0, "learned": True, **metrics}  # fmt: skip


def _write(root, rows: list[dict]) -> None:
    for r in rows:
        write_rows(root, "trials", r["trial_id"], [r])
        write_rows(root, "epochs", r["trial_id"], [{"trial_id": r["trial_id"], "sweep": "trust", "epoch": 1, "train_loss": 1.0}])


BASE = dict(arch="small-cnn", dataset="mnist5k", method="fastclip", epochs=2)


@pytest.mark.parametrize("option", [{"clip_k": 2}, {"momentum": 0.5}, {"augment": False}])
def test_trials_differing_only_in_an_option_outside_the_columns_are_two_configurations(tmp_path, option):
    name = next(iter(option))
    assert name not in {n for n, _ in CONFIG_FIELDS} or name == "clip_k"  # the point: not (necessarily) a column
    rows = [_row(TrialConfig(**BASE, seed=s), clean_acc=80.0 + s, cra_36=20.0) for s in (0, 1)]
    rows += [_row(TrialConfig(**BASE, **option, seed=s), clean_acc=90.0 + s, cra_36=10.0) for s in (0, 1)]
    _write(tmp_path, rows)
    trials = prepare_trials(load_results(tmp_path).trials)
    (st,) = summary_tables(trials, load_paper_results())
    assert name in st.key
    assert sorted(st.ours["clean_acc_mean"]) == [80.5, 90.5] and list(st.ours["n"]) == [2, 2]
    shown, _ = st.display()
    assert name in shown.columns and len(set(shown[name])) == 2  # the table shows the option that varies
    assert len(set(trials["label"])) == 2 and all(f"{name}=" in lab for lab in trials["label"])  # figures too
    report = render_report(load_results(tmp_path), "t")
    hover = report.tables["pareto_points"]["config"]
    assert hover.str.contains(f"{name}=").all() and hover.nunique() == 2


def test_key_ignores_where_the_data_is_and_the_seed(tmp_path):
    _write(tmp_path, [_row(TrialConfig(**BASE, seed=s, data_root=f"/data{s}")) for s in (0, 1)])
    trials = prepare_trials(load_results(tmp_path).trials)
    key = varying_key(trials, exclude=("dataset", "arch"))
    assert "data_root" not in key and "seed" not in key
    assert len(aggregate(trials, key)) == 1


def test_a_file_without_required_columns_and_a_copied_file_are_listed_not_read(tmp_path):
    good = _row(TrialConfig(**BASE))
    _write(tmp_path, [good])
    # a file with some columns only: read before, it was an ok row of dataset "nan", arch "nan"
    pq.write_table(pa.table({"trial_id": ["stray"], "status": ["ok"], "clean_acc": [50.0]}), tmp_path / "trials" / "stray.parquet")
    # a copy of a trial's files under another name
    for table in ("trials", "epochs"):
        shutil.copy(tmp_path / table / f"{good['trial_id']}.parquet", tmp_path / table / "copy of it.parquet")
    res = load_results(tmp_path)
    assert list(res.trials["trial_id"]) == [good["trial_id"]] and len(res.epochs) == 1
    reasons = {(d.table, d.path.name): d.reason for d in res.damaged}
    assert set(reasons) == {("trials", "stray.parquet"), ("trials", "copy of it.parquet"), ("epochs", "copy of it.parquet")}
    assert "dataset" in reasons[("trials", "stray.parquet")] and "arch" in reasons[("trials", "stray.parquet")]
    assert reasons[("trials", "copy of it.parquet")].startswith("duplicate") and good["trial_id"] in reasons[("trials", "copy of it.parquet")]
    report = render_report(res, "t")
    assert "nan · nan" not in report.html and "summary_nan_nan" not in report.tables
    assert set(report.tables["damaged_files"]["path"].map(lambda p: p.rsplit("/", 1)[-1])) == {"stray.parquet", "copy of it.parquet"}
    assert "duplicate" in report.html


def test_the_file_named_by_the_trial_id_wins_over_a_copy_sorting_first(tmp_path):
    good = _row(TrialConfig(**BASE))
    _write(tmp_path, [good])
    stale = {**good, "clean_acc": 11.0}
    write_rows(tmp_path, "trials", "0000-old-copy", [stale])  # sorts before the trial's own file
    res = load_results(tmp_path)
    assert list(res.trials["clean_acc"]) == [90.0] and [d.file_id for d in res.damaged] == ["0000-old-copy"]


def test_an_infinite_metric_is_flagged_not_averaged(tmp_path):
    rows = [_row(TrialConfig(**BASE, seed=s), emp_lip_max=v) for s, v in enumerate((2.0, np.inf, 4.0))]
    _write(tmp_path, rows)
    (st,) = summary_tables(prepare_trials(load_results(tmp_path).trials), load_paper_results())
    assert st.ours.loc[0, "emp_lip_max_mean"] == 3.0 and st.ours.loc[0, "emp_lip_max_nonfinite"] == 1
    shown, _ = st.display()
    assert shown.loc[0, "Max. empirical Lipschitz ratio (pixels)"] == "3.00 ±\xa01.41 (⚠ 1 ±inf left out)"  # a no-break space: "±" never ends a line
    assert "left out" not in shown.loc[0, "Accuracy (%)"]


def test_learned_by_accuracy_or_by_a_falling_loss():
    assert trial_learned(10.0 + LEARNED_ACC_MARGIN, 10, [2.3]) is True
    assert trial_learned(10.0 + LEARNED_ACC_MARGIN - 0.1, 10, [2.3]) is False
    assert trial_learned(10.2, 10, [2.30, 2.29, 2.30]) is False  # AOL-Small at Adam 0.003: at chance, loss flat
    assert trial_learned(12.0, 10, [2.0, 2.0 * (1 - LEARNED_LOSS_DROP)]) is True
    assert trial_learned(None, 10, [2.0, 1.0]) is True and trial_learned(None, 10, [2.0]) is None
    assert trial_learned(30.0, 100, []) is True and trial_learned(5.0, 100, [4.6, 4.5]) is False
    with pytest.raises(ValueError, match="num_classes"):
        trial_learned(50.0, 1, [])


def test_trials_that_did_not_learn_are_marked_and_off_the_fronts_unless_asked(tmp_path):
    learned = _row(TrialConfig(**BASE, clip_to=1.0), clean_acc=90.0, cra_36=10.0)
    dull = _row(TrialConfig(**BASE, clip_to=2.0), clean_acc=95.0, cra_36=20.0, learned=False)  # dominates, if drawn
    _write(tmp_path, [learned, dull])
    res = load_results(tmp_path)
    (st,) = summary_tables(prepare_trials(res.trials), load_paper_results())
    shown, classes = st.display()
    assert sorted(shown["n"]) == ["1", "1 (1 did not learn)"] and sorted(classes) == ["", "unlearned"]
    report = render_report(res, "t")
    pts = report.tables["pareto_points"]
    assert not pts["config"].str.contains("clip_to=2").any() and "did not learn are left out" in report.html
    assert "trials that did not learn" in report.html and "did not learn" in report.html
    pts = render_report(res, "t", include_unlearned=True).tables["pareto_points"]
    assert pts["config"].str.contains("clip_to=2").any()


def test_lr_none_is_the_familys_default_and_the_trial_id_carries_it():
    from svconv.models import MODELS, default_lr

    cfg = TrialConfig(arch="lipconvnet-5-4", method="soc", optimizer="adam")
    assert cfg.lr == default_lr("lipconvnet-5-4", "adam") == MODELS["lipconvnet-N"].lr.adam
    assert cfg.trial_id() == TrialConfig(arch="lipconvnet-5-4", method="soc", optimizer="adam", lr=cfg.lr).trial_id()
    assert TrialConfig().lr == MODELS["small-cnn"].lr.sgd and TrialConfig(lr=0.5).lr == 0.5
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="optimizer must be one of"):
        default_lr("small-cnn", "rmsprop")


def test_sweep_status_counts_and_lists_trials_that_did_not_learn(tmp_path, capsys):
    from sweeps.spec import load_spec
    from sweeps.state import SweepState
    from sweeps.status import status_rows, sweep_status
    from svconv_cli.main import main
    from tests.test_results_store import _spec

    storage, results = tmp_path / "storage", tmp_path / "results"
    state = SweepState.from_spec(load_spec(_spec(tmp_path)), results, storage)
    state.save()
    good, dull = (t["trial_id"] for t in state.trials)
    for tid, learned in ((good, True), (dull, False)):
        write_rows(results, "trials", tid, [{"trial_id": tid, "sweep": state.name, "status": "ok", "learned": learned}])
    status = sweep_status(state.name, storage)
    assert status.counts["ok"] == 2 and [t.trial_id for t in status.unlearned] == [dull] and status.complete
    assert [r["learned"] for r in status_rows(status)] == [True, False]
    assert main(["sweep", "status", state.name, "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "1 did not learn" in out and f"did not learn (1; check the learning rate): {dull}" in out


def test_a_real_trial_at_a_rate_too_small_to_learn_is_written_and_reported_as_such(tmp_path, capsys):
    """Two real trials through `svconv train`: lr 1e-12 ends at 12.5 % on 4 classes with a flat loss, lr 0.05 at
    100 %; the rows say which learned, the CLI warns about the first and the report keeps it off the front."""
    from svconv.results import read_table
    from svconv_cli.main import main

    tiny = ["--dataset", "synthetic", "--n-train", "128", "--n-test", "64", "--epochs", "2", "--batch-size", "32",
            "--emp-lip-n", "0", "--device", "cpu", "--results", str(tmp_path)]  # fmt: skip
    assert main(["train", *tiny, "--lr", "1e-12"]) == 0  # it ran: ok, but it says it did not learn
    assert "did not learn" in capsys.readouterr().err
    assert main(["train", *tiny, "--lr", "0.05"]) == 0
    assert "did not learn" not in capsys.readouterr().err
    rows = read_table(tmp_path, "trials").set_index("lr")
    assert rows.loc[1e-12, "learned"] == False and rows.loc[0.05, "learned"] == True  # noqa: E712 (numpy bools)
    report = render_report(load_results(tmp_path), "t")
    assert report.tables["pareto_points"]["config"].nunique() == 1 and "1 did not learn" in report.html
    drawn = render_report(load_results(tmp_path), "t", include_unlearned=True).tables["pareto_points"]["config"]
    assert set(drawn.str.extract(r"lr=(\S+)")[0]) == {"1e-12", "0.05"}
