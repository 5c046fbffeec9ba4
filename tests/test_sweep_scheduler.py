"""Early stopping in sweeps: the spec's `scheduler` refused with FILE:LINE before anything runs, and on a real
local Ray instance ASHA stops the trials that do not learn, each kept as `stopped` with its epochs' rows,
shown by `sweep status` and left alone by `sweep resume`."""

from __future__ import annotations

import textwrap

import pytest
from test_sweep_ray import TINY, Completed, ray  # Ray's environment is set there before Ray is imported

from svconv.results import read_table
from sweeps.driver import resume_sweep, run_sweep
from sweeps.spec import SpecError, parse_spec
from svconv_cli.main import main as svconv_main

BASE = """\
name: s
fixed: {arch: small-cnn, dataset: synthetic, epochs: 3}
grid:
  seed: [0, 1]
"""


@pytest.mark.parametrize(
    "scheduler, line, words",
    [
        ("{type: hyperband, metric: clean_acc}", 5, ["type must be one of asha", "'hyperband'"]),
        ("{type: asha, metric: acc}", 5, ["metric must be one of clean_acc, test_acc, train_acc", "'acc'"]),
        ("{type: asha, metric: clean_acc, mode: up}", 5, ["mode must be one of max, min", "'up'"]),
        ("{type: asha, metric: clean_acc, grace: 1}", 5, ["unknown key 'grace'", "grace_period, max_t"]),
        ("{metric: clean_acc}", 5, ["scheduler needs a `type`"]),
        ("{type: asha, metric: clean_acc, grace_period: 0}", 5, ["grace_period must be a whole number of epochs >= 1"]),
        ("{type: asha, metric: clean_acc, grace_period: 2, max_t: 1}", 5, ["grace_period (2) must be <= max_t (1)"]),
        ("{type: asha, metric: clean_acc, grace_period: 3}", 5, ["grace_period (3) must be below the trials' epochs"]),
        ("\n  type: asha\n  metric: clean_acc\n  reduction_factor: 1", 8, ["reduction_factor must be a number > 1"]),
        ("[asha]", 5, ["scheduler must be a mapping"]),
    ],
)
def test_a_bad_scheduler_is_refused_naming_the_key_and_the_allowed_values(scheduler, line, words):
    assert_refused(BASE + f"scheduler: {scheduler}\n", f"s.yaml:{line}: scheduler", words)


def assert_refused(text: str, start: str, words: list[str]) -> None:
    """Parsing ``text`` (as ``s.yaml``) fails with a message that starts with ``start`` and holds ``words``."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml")
    msg = str(info.value)
    assert msg.startswith(start), msg
    for w in words:
        assert w in msg, msg


def test_scheduler_defaults_come_from_the_metric_and_the_trials():
    spec = parse_spec(BASE + "scheduler: {type: asha, metric: train_loss}\n")
    assert spec.scheduler.to_dict() == {"type": "asha", "metric": "train_loss", "mode": "min", "grace_period": 1,
                                        "max_t": 3, "reduction_factor": 4.0}
    assert parse_spec(BASE).scheduler is None


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_asha_stops_trials_that_do_not_learn_and_resume_leaves_them_stopped(local_ray, tmp_path, capsys):
    # one trial learns (lr 0.1: 100 % after an epoch), two cannot (lr 1e-9: chance); run one at a time in grid
    # order, ASHA records the learner at its one rung, epoch 2, and stops each of the others there (below the
    # rung's median); their rows of both epochs come from the checkpoint Tune kept with epoch 2's result
    text = textwrap.dedent(
        f"""\
        name: asha
        fixed: {TINY[:-1]}, epochs: 3}}
        grid:
          case:
            - {{seed: 0, lr: 0.1}}
            - {{seed: 1, lr: 1.0e-9}}
            - {{seed: 2, lr: 1.0e-9}}
        resources: {{cpus: 1, gpus: 1}}
        concurrency: 1
        scheduler: {{type: asha, metric: clean_acc, mode: max, grace_period: 2, reduction_factor: 2}}
        """
    )
    spec = parse_spec(text, source="asha.yaml")
    results, storage = tmp_path / "results", tmp_path / "state"
    outcome = run_sweep(spec, results_dir=results, storage=storage, progress=False)
    assert outcome.ok and not outcome.interrupted
    assert outcome.status.counts == {"ok": 1, "diverged": 0, "failed": 0, "stopped": 2, "unfinished": 0, "unreadable": 0}

    good, *bad = [t.trial_id for t in spec.trials]
    rows = read_table(results, "trials").set_index("trial_id")
    epochs = read_table(results, "epochs")
    assert rows.loc[good, "status"] == "ok" and rows.loc[good, "epochs_done"] == 3
    for tid in bad:
        row = rows.loc[tid]
        assert row["status"] == "stopped" and row["epochs_done"] == 2
        assert "stopped by the asha scheduler after epoch 2 of 3" in row["error"]
        mine = epochs[epochs["trial_id"] == tid].sort_values("epoch")
        assert list(mine["epoch"]) == [1, 2]  # every epoch's row up to the last one
        assert row["clean_acc"] == mine["test_acc"].iloc[-1]
        assert row["train_time_s"] == pytest.approx(mine["epoch_time_s"].sum())
    # no trackers listed: Tune wrote no TensorBoard files of its own
    assert not list((storage / "asha" / "tune").rglob("events.out.tfevents*"))

    assert svconv_main(["sweep", "status", "asha", "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "stopped: 2" in out and "stopped early by the scheduler (2)" in out and "(after 2 epochs)" in out

    seen = Completed()
    again = resume_sweep("asha", storage=storage, progress=False, callbacks=[seen])
    assert again.ok and seen.ids == set()  # nothing ran again, the stopped trials included
    after = read_table(results, "trials").set_index("trial_id")
    assert (after.loc[bad, "status"] == "stopped").all()
    assert (after["start_time"] == rows.loc[after.index, "start_time"]).all()
