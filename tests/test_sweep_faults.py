"""Faults a sweep must survive with nothing lost and a clear message (issue 21, items 1, 3, 4, 7, 13).

- damaged ``epochs``/``layers`` files count as lost rows: listed by ``sweep status``, run again by ``resume``;
- a truncated checkpoint: the trial falls back to the newest readable one (or starts afresh), naming the file;
- SIGTERM to a real ``svconv sweep run``: a clean stop, exit 143, the lock released, the resume command;
- deterministic errors (missing data, bad input, a full disk) are not retried; missing data is refused
  before any trial starts, the dry run included;
- sweep state lives beside its results folder by default, and the state of another one is never replaced.

Ray start-ups are few: the SIGTERM test's own `svconv sweep run` process, and one in-process local Ray
shared by the rest of the module.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from test_sweep_ray import RAY_ENV  # Ray's environment for tests (set on import, before Ray starts)

ray = pytest.importorskip("ray")

from svconv.config import TrialConfig  # noqa: E402
from svconv.data import DatasetNotFoundError  # noqa: E402
from svconv.results import damaged_trials, read_table, write_rows  # noqa: E402
from svconv.training.checkpoint import checkpoints, load_latest_readable, save_checkpoint  # noqa: E402
from svconv.trial import TrialFailure, run_trial  # noqa: E402
from sweeps.failures import is_deterministic  # noqa: E402
from sweeps.interrupt import TermAsInterrupt, Terminated  # noqa: E402
from sweeps.spec import parse_spec  # noqa: E402
from sweeps.state import RESULTS_STATE_DIR, STATE_FILE, SweepState  # noqa: E402
from sweeps.status import format_status, sweep_status  # noqa: E402
from svconv_cli.main import main as svconv_main  # noqa: E402
from test_data import _write_cifar  # noqa: E402  (one home for a CIFAR folder in torchvision's format)

TINY = "arch: small-cnn, dataset: synthetic, n_test: 64, emp_lip_n: 16, batch_size: 64, device: cpu"


def spec_text(name: str, grid: str, fixed: str = TINY, retries: int = 2, extra: str = "") -> str:
    return f"name: {name}\nfixed: {{{fixed}}}\ngrid:\n{textwrap.indent(grid, '  ')}\nresources: {{cpus: 1, gpus: 0}}\nretries: {retries}\n{extra}"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def local_ray():
    """Starts one local Ray instance for the module on first call (run_sweep and resume_sweep join it)."""

    def start() -> None:
        if not ray.is_initialized():
            ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)

    yield start
    if ray.is_initialized():
        ray.shutdown()


# --------------------------------------------------------------------------------------------------
# without Ray


def test_deterministic_errors_are_told_from_infrastructure_faults():
    assert is_deterministic(DatasetNotFoundError("dataset 'cifar10': missing data_batch_1"))
    assert is_deterministic(ValueError("rank must be below 15"))
    assert is_deterministic(OSError(errno.ENOSPC, "No space left on device"))
    assert is_deterministic(OSError(errno.EROFS, "Read-only file system"))
    try:  # torch.save on a full disk: a RuntimeError raised while handling the OSError
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    except RuntimeError as exc:
        assert is_deterministic(exc)
    assert is_deterministic(RuntimeError("[Errno 28] No space left on device"))
    # what may be the infrastructure's: retried
    assert not is_deterministic(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_deterministic(TrialFailure("fail_at_epoch=1"))
    assert not is_deterministic(ConnectionError("GCS unreachable"))
    assert not is_deterministic(OSError(errno.EIO, "Input/output error"))


def test_an_unreadable_checkpoint_falls_back_to_the_newest_readable_one(tmp_path, caplog):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"epoch": epoch, "w": torch.randn(64)}, keep=3)
    newest = checkpoints(tmp_path)[0]
    truncate(newest)
    with caplog.at_level(logging.WARNING, logger="svconv.training.checkpoint"):
        path, state = load_latest_readable(checkpoints(tmp_path))
    assert path.name == "epoch_0002.pt" and state["epoch"] == 2
    assert f"checkpoint {newest} is unreadable" in caplog.text and "falling back to epoch_0002.pt" in caplog.text
    for p in checkpoints(tmp_path):
        p.write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="svconv.training.checkpoint"):
        assert load_latest_readable(checkpoints(tmp_path)) is None
    assert caplog.text.count("is unreadable") == 3 and "starting from epoch 1" in caplog.text


def test_a_trial_whose_only_checkpoint_is_truncated_starts_afresh_and_says_so(tmp_path, caplog):
    config = TrialConfig.from_dict({"arch": "small-cnn", "dataset": "synthetic", "n_train": 64, "n_test": 32,
                                    "emp_lip_n": 8, "batch_size": 32, "device": "cpu", "epochs": 2})
    ckpt = tmp_path / "ckpt"
    first = run_trial(config, tmp_path / "r1", checkpoint_dir=ckpt, progress=False)
    assert first["status"] == "ok"
    (only,) = checkpoints(ckpt)
    truncate(only)
    with caplog.at_level(logging.WARNING, logger="svconv.training.checkpoint"):
        again = run_trial(config, tmp_path / "r2", checkpoint_dir=ckpt, progress=False)
    assert again["status"] == "ok" and again["epochs_done"] == 2  # trained from epoch 1, not failed
    assert f"checkpoint {only} is unreadable" in caplog.text and "starting from epoch 1" in caplog.text
    assert len(read_table(tmp_path / "r2", "epochs")) == 2


def test_sigterm_outside_tune_unwinds_as_an_interrupt_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, TermAsInterrupt() as term:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode; never gets here
    assert caught.value.signum == signal.SIGTERM and term.received == signal.SIGTERM
    assert isinstance(caught.value, KeyboardInterrupt)  # `with` blocks (the sweep's lock) unwind
    assert signal.getsignal(signal.SIGTERM) == before


def _two_trial_state(tmp_path: Path) -> tuple[SweepState, list[str]]:
    spec = parse_spec(spec_text("dmg", "seed: [0, 1]", TINY + ", n_train: 64, epochs: 1"), source="dmg.yaml")
    state = SweepState.from_spec(spec, tmp_path / "results", tmp_path / "state")
    state.save()
    ids = [t["trial_id"] for t in state.trials]
    for tid in ids:  # the rows a finished trial leaves, written by the real writer
        tag = {"trial_id": tid, "sweep": "dmg"}
        write_rows(state.results_dir, "epochs", tid, [{**tag, "epoch": 1, "test_acc": 50.0}])
        write_rows(state.results_dir, "layers", tid, [{**tag, "layer": "conv1"}])
        write_rows(state.results_dir, "trials", tid, [{**tag, "status": "ok", "epochs_done": 1}])
    return state, ids


def test_status_counts_damaged_epochs_and_layers_files_as_unreadable(tmp_path, capsys):
    state, (a, b) = _two_trial_state(tmp_path)
    results = Path(state.results_dir)
    truncate(results / "epochs" / f"{a}.parquet")
    (results / "layers" / f"{b}.parquet").write_bytes(b"")
    status = sweep_status("dmg", tmp_path / "state")
    assert status.counts["unreadable"] == 2 and status.counts["ok"] == 0 and not status.complete
    by_id = {t.trial_id: t for t in status.trials}
    assert str(results / "epochs" / f"{a}.parquet") in by_id[a].error
    assert str(results / "layers" / f"{b}.parquet") in by_id[b].error and "0 bytes" in by_id[b].error
    assert set(damaged_trials(results)) == {a, b}
    assert svconv_main(["sweep", "status", "dmg", "--storage", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "unreadable: 2" in out and f"epochs/{a}.parquet" in out and f"layers/{b}.parquet" in out
    assert out.strip() == format_status(status)


def test_state_defaults_beside_the_results_folder_and_another_folders_state_is_not_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SVCONV_SWEEPS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = parse_spec(spec_text("demo", "seed: [0]", TINY + ", n_train: 64, epochs: 1"), source="demo.yaml")
    # two clones, each with its own demo_results: two states, none in the home folder
    a = SweepState.from_spec(spec, tmp_path / "A" / "demo_results", None)
    b = SweepState.from_spec(spec, tmp_path / "B" / "demo_results", None)
    assert a.root == tmp_path / "A" / "demo_results" / RESULTS_STATE_DIR / "demo" != b.root
    a.save()
    found = SweepState.load("demo", None, tmp_path / "A" / "demo_results")
    assert found.results_dir == a.results_dir
    # one storage root, another results folder: refused before anything starts, naming both, the state intact
    shared = tmp_path / "shared"
    SweepState.from_spec(spec, tmp_path / "C", shared).save()
    saved = (shared / "demo" / STATE_FILE).read_text()
    spec_file = tmp_path / "demo.yaml"
    spec_file.write_text(spec.text)
    code = svconv_main(["sweep", "run", str(spec_file), "--results", str(tmp_path / "D"), "--storage", str(shared)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"belongs to the results folder {tmp_path / 'C'}" in err and f"not to {tmp_path / 'D'}" in err
    assert (shared / "demo" / STATE_FILE).read_text() == saved and not (shared / "demo" / "lock.json").exists()
    assert not ray.is_initialized()


def test_missing_data_is_refused_before_anything_starts_dry_run_included(tmp_path, capsys):
    spec_file = tmp_path / "c10.yaml"
    spec_file.write_text(spec_text("c10", "seed: [0, 1]", f"arch: small-cnn, dataset: cifar10, data_root: {tmp_path / 'data'}, epochs: 1"))
    assert svconv_main(["sweep", "run", str(spec_file), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "sweep c10: 2 trials" in out  # the listing, then why it cannot run
    assert "sweep 'c10' cannot start, its data is missing: 2 trial(s): dataset 'cifar10': missing data_batch_1" in err
    assert str(tmp_path / "data" / "cifar-10-batches-py") in err
    assert svconv_main(["sweep", "run", str(spec_file), "--results", str(tmp_path / "r"), "--storage", str(tmp_path / "s")]) == 2
    assert "its data is missing" in capsys.readouterr().err
    assert not (tmp_path / "s" / "c10").exists() and not ray.is_initialized()  # no state, no Ray


# --------------------------------------------------------------------------------------------------
# real Ray


def test_sigterm_stops_a_real_sweep_cleanly_and_resume_recovers_every_damaged_file(local_ray, tmp_path, capfd):
    epochs = 12
    text = spec_text("term", "seed: [0, 1, 2]", TINY + f", n_train: 2048, epochs: {epochs}", extra="concurrency: 2\n")
    spec_file = tmp_path / "term.yaml"
    spec_file.write_text(text)
    spec = parse_spec(text)
    results, storage = tmp_path / "results", tmp_path / "state"
    tune_dir = storage / "term" / "tune"
    cmd = [sys.executable, "-m", "svconv_cli.main", "sweep", "run", str(spec_file), "--results", str(results),
           "--storage", str(storage), "--no-progress"]
    driver = subprocess.Popen(cmd, env={**os.environ, **RAY_ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        # one trial finished, another has two checkpoints (one to fall back to) and most of its epochs to go
        def far_enough(trial_dir: Path) -> bool:
            done = sorted(int(p.stem[6:]) for p in trial_dir.glob("checkpoint_*/epoch_*.pt"))
            return len(done) >= 2 and done[-1] <= epochs // 3

        while not (list((results / "trials").glob("*.parquet")) and any(far_enough(d) for d in tune_dir.glob("*") if d.is_dir())):
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, "no trial got far enough in time"
            time.sleep(0.2)
        driver.send_signal(signal.SIGTERM)  # what SLURM and Kubernetes send
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, out
    assert f"interrupted (SIGTERM): continue with `svconv sweep resume term --storage {storage}`" in out
    assert "SIGTERM received at time" not in out and "Traceback" not in out  # no crash dump
    assert not (storage / "term" / "lock.json").exists()

    finished = sorted(p.stem for p in (results / "trials").glob("*.parquet"))
    unfinished = [t.trial_id for t in spec.trials if t.trial_id not in finished]
    assert finished and unfinished
    # damage: the newest checkpoint of the furthest unfinished trial (the trial resumes from the newest readable
    # one that Tune kept: two); the epochs file of one finished trial, the layers file of another
    def saved(tid: str) -> list[Path]:
        return sorted((tune_dir / tid).glob("checkpoint_*/epoch_*.pt"), key=lambda p: p.name)

    victim = max(unfinished, key=lambda tid: len(saved(tid)))
    assert len(saved(victim)) >= 2
    cut = saved(victim)[-1]
    truncate(cut)
    truncate(results / "epochs" / f"{finished[0]}.parquet")
    (results / "layers" / f"{finished[-1]}.parquet").write_bytes(b"")
    before = sweep_status("term", storage)
    assert {t.trial_id for t in before.trials if t.status == "unreadable"} == {finished[0], finished[-1]}
    start = read_table(results, "trials").set_index("trial_id")["start_time"]

    local_ray()
    capfd.readouterr()
    from sweeps.driver import resume_sweep

    outcome = resume_sweep("term", storage=storage, progress=False)
    err = capfd.readouterr().err
    assert outcome.ok and outcome.retried == 0, format_status(outcome.status)
    assert outcome.status.counts["ok"] == 3 and not damaged_trials(results)
    # named as stored, and resumed from the checkpoint before it: not failed, not from scratch
    assert f"checkpoint {cut} is unreadable" in err
    assert f"falling back to epoch_{int(cut.stem[6:]) - 1:04d}.pt" in err
    assert "running them again" in err
    after = read_table(results, "trials").set_index("trial_id")
    for tid in {finished[0], finished[-1]}:  # run again: new rows in every table
        assert after.loc[tid, "start_time"] > start[tid]
    assert sorted(read_table(results, "epochs").groupby("trial_id").size()) == [epochs] * 3
    assert (after["epochs_done"] == epochs).all()


def test_missing_data_in_a_trial_fails_it_once_and_retry_failed_runs_it_when_the_data_is_there(local_ray, tmp_path, monkeypatch, capfd):
    # The data vanished after the driver's check (a dropped mount): the check is skipped to get there;
    # the trial, Ray and the data loading are real.
    import sweeps.driver as driver

    monkeypatch.setattr(driver, "check_data", lambda name, configs: None)
    data = tmp_path / "data"
    fixed = f"arch: small-cnn, dataset: cifar10, data_root: {data}, n_train: 40, n_test: 20, emp_lip_n: 8, batch_size: 20, device: cpu, epochs: 1"
    spec = parse_spec(spec_text("nodata", "seed: [0, 1]", fixed, retries=2), source="nodata.yaml")
    local_ray()
    capfd.readouterr()
    outcome = driver.run_sweep(spec, results_dir=tmp_path / "results", storage=tmp_path / "state", progress=False)
    err = capfd.readouterr().err
    assert outcome.retried == 0  # not 2 x 2 retries of an error that cannot go away
    assert outcome.status.counts["failed"] == 2 and not outcome.interrupted
    assert all("DatasetNotFoundError" in t.error for t in outcome.status.failures)
    assert err.count("[failed]") == 2 and "not retried" in err and "missing data_batch_1" in err

    _write_cifar(data, "cifar10", per_file=8)
    again = driver.resume_sweep("nodata", storage=tmp_path / "state", retry_failed=True, progress=False)
    assert again.ok and again.status.counts["ok"] == 2, format_status(again.status)
