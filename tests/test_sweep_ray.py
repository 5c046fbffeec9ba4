"""Sweeps on a real local multi-node Ray cluster: one row per config, failures recorded, a lost node
survived, an interrupted sweep resumed without re-running finished trials.

One cluster (a head without GPUs and two workers with one logical GPU each) serves the whole module.
Trials ask for 1 CPU and 1 GPU, so they run on the workers only, one per worker at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

# Ray's environment, set before Ray is imported: no usage stats, no token auth, no dashboard.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}
os.environ.update(RAY_ENV)

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from svconv.results import read_table  # noqa: E402
from sweeps.driver import resume_sweep, run_sweep  # noqa: E402
from sweeps.spec import parse_spec  # noqa: E402
from sweeps.status import format_status, sweep_status  # noqa: E402
from svconv_cli.main import main as svconv_main  # noqa: E402

# A tiny trial: small CNN on 256 synthetic 8x8 images, about a second of work once imports are warm.
TINY = "{arch: small-cnn, dataset: synthetic, n_train: 256, n_test: 64, emp_lip_n: 16, batch_size: 64, device: cpu}"


def tiny_spec(name: str, seeds: int, epochs: int = 1, retries: int = 1, extra: str = "", n_train: int = 256) -> str:
    fixed = TINY.replace("n_train: 256", f"n_train: {n_train}")
    return textwrap.dedent(
        f"""\
        name: {name}
        fixed: {fixed[:-1]}, epochs: {epochs}}}
        grid:
          case:
        """
    ) + "".join(f"    - {{seed: {s}}}\n" for s in range(seeds)) + extra + textwrap.dedent(
        f"""\
        resources: {{cpus: 1, gpus: 1}}
        retries: {retries}
        """
    )


@pytest.fixture(scope="module")
def cluster():
    head = {
        "num_cpus": 1,
        "num_gpus": 0,
        "include_dashboard": False,
        # notice a removed node within seconds rather than the default half minute
        "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 5},
    }
    c = Cluster(initialize_head=True, head_node_args=head)
    c.workers = [c.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def trial_rows(results: Path, sweep: str):
    rows = read_table(results, "trials")
    return rows[rows["sweep"] == sweep]


def assert_one_row_per_trial(results: Path, spec) -> None:
    rows = trial_rows(results, spec.name)
    expected = sorted(t.trial_id for t in spec.trials)
    assert sorted(rows["trial_id"]) == expected  # every config once, nothing else
    assert sorted(p.stem for p in (results / "trials").glob("*.parquet")) == expected
    assert not list((results / "trials").glob(".*.tmp"))  # no half-written files left behind


# --------------------------------------------------------------------------------------------------
# a sweep of 8 good trials and one that raises


@pytest.fixture(scope="module")
def mixed_sweep(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    extra = "    - {seed: 8, fail_at_epoch: 1}\n"
    spec = parse_spec(tiny_spec("mixed", seeds=8, extra=extra), source="mixed.yaml")
    outcome = run_sweep(spec, results_dir=root / "results", storage=root / "state", progress=False)
    return spec, outcome, root


def test_every_config_lands_exactly_one_row(mixed_sweep):
    spec, outcome, root = mixed_sweep
    assert len(spec.trials) == 9
    assert_one_row_per_trial(root / "results", spec)
    rows = trial_rows(root / "results", spec.name).set_index("trial_id")
    ok = [t.trial_id for t in spec.trials if t.config.fail_at_epoch is None]
    assert (rows.loc[ok, "status"] == "ok").all()
    assert (rows.loc[ok, "epochs_done"] == 1).all() and rows.loc[ok, "clean_acc"].notna().all()
    epochs = read_table(root / "results", "epochs")
    assert sorted(epochs["trial_id"]) == sorted(ok)  # one epoch row per good trial
    assert not outcome.interrupted


def test_a_trial_that_raises_is_recorded_failed_and_the_sweep_goes_on(mixed_sweep, capsys):
    spec, outcome, root = mixed_sweep
    bad = next(t for t in spec.trials if t.config.fail_at_epoch == 1)
    row = trial_rows(root / "results", spec.name).set_index("trial_id").loc[bad.trial_id]
    assert row["status"] == "failed"
    assert "TrialFailure" in row["error"] and "fail_at_epoch=1" in row["error"]
    assert outcome.retried == 1  # retries: 1, so Tune ran it a second time; it failed again
    status = outcome.status
    assert status.counts == {"ok": 8, "diverged": 0, "failed": 1, "stopped": 0, "unfinished": 0, "unreadable": 0}
    assert [t.trial_id for t in status.failures] == [bad.trial_id]
    assert not outcome.ok

    assert svconv_main(["sweep", "status", "mixed", "--storage", str(root / "state")]) == 0
    out = capsys.readouterr().out
    assert "ok: 8" in out and "failed: 1" in out and "fail_at_epoch=1" in out and bad.trial_id in out
    assert out.strip() == format_status(sweep_status("mixed", root / "state"))


# --------------------------------------------------------------------------------------------------
# interrupted, then resumed


class Completed(ray.tune.Callback):
    """The trial ids of the trials that completed in this run."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ids.add(trial.config["trial"]["trial_id"])


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(cluster, tmp_path):
    text = tiny_spec("resumable", seeds=8, epochs=2, retries=0)
    spec_file = tmp_path / "resumable.yaml"
    spec_file.write_text(text)
    spec = parse_spec(text)
    results, storage = tmp_path / "results", tmp_path / "state"
    # the driver of a real `svconv sweep run`, in its own process, on the running cluster
    cmd = [sys.executable, "-m", "svconv_cli.main", "sweep", "run", str(spec_file), "--address", cluster.address,
           "--results", str(results), "--storage", str(storage), "--no-progress"]
    env = {**os.environ, **RAY_ENV}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(trial_rows(results, "resumable")) < 2:
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
        driver.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        out, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out
    assert "svconv sweep resume resumable" in out

    # what Tune itself recorded as finished before the interruption
    analysis = ray.tune.ExperimentAnalysis(str(storage / "resumable" / "tune"))
    finished = {t.config["trial"]["trial_id"] for t in analysis.trials if t.status == "TERMINATED"}
    before = trial_rows(results, "resumable").set_index("trial_id")
    # >= 1: a trial writes its row just before its final report, so the second row can beat Tune's bookkeeping
    assert len(finished) >= 1 and finished <= set(before.index)
    assert len(finished) < len(spec.trials), "the sweep ended before the interruption; nothing to resume"

    seen = Completed()
    outcome = resume_sweep("resumable", storage=storage, progress=False, callbacks=[seen])
    assert outcome.ok and outcome.status.counts["ok"] == len(spec.trials)
    assert_one_row_per_trial(results, spec)
    after = trial_rows(results, "resumable").set_index("trial_id")
    # the resumed run called this process's callbacks, for exactly the trials it ran
    assert seen.ids == {t.trial_id for t in spec.trials} - finished
    for tid in finished:  # not run again: the same row, the same start time
        assert after.loc[tid, "start_time"] == before.loc[tid, "start_time"]
    assert set(after.index) - set(before.index)  # trials that had not ended ran on resume
    assert (after["epochs_done"] == 2).all()

    # a finished trial's Parquet file is damaged (zero bytes): resume runs that trial again, only it
    victim = sorted(finished)[0]
    (results / "trials" / f"{victim}.parquet").write_bytes(b"")
    assert [t.trial_id for t in sweep_status("resumable", storage).trials if t.status == "unreadable"] == [victim]
    again = resume_sweep("resumable", storage=storage, progress=False)
    assert again.ok and again.status.counts["ok"] == len(spec.trials)
    assert_one_row_per_trial(results, spec)
    rerun = trial_rows(results, "resumable").set_index("trial_id")
    assert rerun.loc[victim, "start_time"] > after.loc[victim, "start_time"]
    others = [t for t in after.index if t != victim]
    assert (rerun.loc[others, "start_time"] == after.loc[others, "start_time"]).all()


# --------------------------------------------------------------------------------------------------
# a worker node lost mid-sweep


class WatchNode(ray.tune.Callback):
    """Sets ``hit`` once a trial reports an epoch before ``before_epoch`` from node ``node_id``: a trial is
    running there and has more epochs to go."""

    def __init__(self, node_id: str, before_epoch: int) -> None:
        self.node_id, self.before_epoch = node_id, before_epoch
        self.hit = threading.Event()

    def __getstate__(self):  # Tune pickles its callbacks with the experiment; an Event does not pickle
        return {"node_id": self.node_id, "before_epoch": self.before_epoch}

    def __setstate__(self, state):
        self.__dict__.update(state, hit=threading.Event())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("node_id") == self.node_id and result.get("epoch", self.before_epoch) < self.before_epoch:
            self.hit.set()


def test_a_lost_worker_node_is_survived_with_retries(cluster, tmp_path):
    # epochs long enough (a few tenths of a second each) that the victim's trial is still running when its
    # node goes: on a fast machine 256 images finish the remaining epochs before the node is removed
    spec = parse_spec(tiny_spec("lostnode", seeds=6, epochs=4, retries=2, n_train=4096), source="lostnode.yaml")
    results = tmp_path / "results"
    box = {}
    victim = cluster.workers[-1]
    watch = WatchNode(victim.node_id, before_epoch=2)

    def drive() -> None:
        try:
            box["outcome"] = run_sweep(spec, results_dir=results, storage=tmp_path / "state", progress=False,
                                       callbacks=[watch])
        except BaseException as exc:  # surfaced in the test thread below
            box["error"] = exc

    thread = threading.Thread(target=drive)
    thread.start()
    # a trial is half-way through on the victim node: the node disappears
    deadline = time.monotonic() + 240
    while not watch.hit.wait(timeout=0.5):
        assert thread.is_alive(), box
        assert time.monotonic() < deadline, "no trial reported from the victim node"
    cluster.workers.remove(victim)
    cluster.remove_node(victim, allow_graceful=False)
    cluster.workers.append(cluster.add_node(num_cpus=1, num_gpus=1))  # the autoscaler's replacement
    thread.join(timeout=300)
    assert not thread.is_alive(), "the sweep did not end"
    assert "error" not in box, box.get("error")
    outcome = box["outcome"]
    assert outcome.retried >= 1  # the trial on the lost node failed and ran again
    assert outcome.ok, format_status(outcome.status)
    assert_one_row_per_trial(results, spec)
    rows = trial_rows(results, "lostnode")
    assert (rows["status"] == "ok").all() and (rows["epochs_done"] == 4).all()
