"""Run a sweep on Ray Tune: one Tune trial per expanded config, each running ``svconv.trial.run_trial``.

Every trial writes its own Parquet rows (file id ``config.trial_id(sweep)``) under the results folder,
so a retried or re-run trial replaces its rows instead of adding new ones. Per-epoch checkpoints go
through Tune (``tune.report(..., checkpoint=...)``): a trial retried after a failure, or resumed after
the driver was interrupted, continues from its last finished epoch, on whichever node it lands.
Where the state and the results live: see :mod:`sweeps.state`. Early stopping: :mod:`sweeps.scheduler`;
trackers: :mod:`sweeps.trackers`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from sweeps.failures import check_data, is_deterministic, one_line
from sweeps.interrupt import TermAsInterrupt
from sweeps.lock import SweepLock
from sweeps.scheduler import TIME_ATTR, SchedulerSpec, write_stopped_rows
from sweeps.spec import SweepSpec
from sweeps.state import SweepState, check_owner
from sweeps.status import SweepStatus, sweep_status

logger = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What a run or resume ended with: the sweep's status after it, and whether it was cut short."""

    status: SweepStatus
    interrupted: bool
    retried: int = 0  # trial failures (errors, lost nodes) that Tune answered with a retry in this run
    signal: int | None = None  # the signal that interrupted it (SIGINT or SIGTERM); None: not by a signal
    storage: str | None = None  # the storage root of its state (for the resume command)

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.status.complete and not self.status.counts.get("failed")


# --------------------------------------------------------------------------------------------------
# what runs inside each Ray trial


def sweep_trainable(params: dict[str, Any]) -> None:
    """Tune function trainable: one trial of the sweep (``params``: ``trial``, ``sweep``, ``results_dir``).

    Reports each epoch's metrics with the epoch's checkpoint, then a final report with ``final=True``
    and the trial's status. An exception of the trial is re-raised after its ``failed`` row is written,
    so Tune's ``FailureConfig`` retries it (from the last checkpoint), unless it is deterministic
    (:mod:`sweeps.failures`): then the final report says ``failed`` with the error's line, and Tune
    does not retry. Warnings of the trial (an unreadable checkpoint) travel in ``notes``.
    """
    import ray

    from svconv.config import TrialConfig
    from svconv.trial import run_trial

    trial = params["trial"]
    config = TrialConfig.from_dict(trial["config"])
    notes = _NoteHandler()
    logging.getLogger("svconv").addHandler(notes)
    try:
        with tempfile.TemporaryDirectory(prefix=f"svconv-{trial['trial_id']}-") as work:
            checkpoint = tune.get_checkpoint()
            if checkpoint is not None:  # a retry or a resumed sweep: continue from the last readable epoch
                notes.aliases = _restore_checkpoints(checkpoint, work)

            node_id = ray.get_runtime_context().get_node_id()  # which node ran which epoch, in Tune's results

            def report(metrics: dict[str, Any]) -> None:
                # run_trial saved the epoch's checkpoint in `work` before calling this (it keeps only the latest)
                # clean_acc: the epoch's test accuracy, under the name a scheduler's metric uses (sweeps.scheduler)
                tune.report({**_scalars(metrics), "clean_acc": metrics["test_acc"], "node_id": node_id, **notes.take()},
                            checkpoint=tune.Checkpoint.from_directory(work))

            failure = {}
            try:
                row = run_trial(
                    config,
                    params["results_dir"],
                    sweep=params["sweep"],
                    checkpoint_dir=work,
                    report=report,
                    raise_on_error=True,
                    progress=False,
                )
            except Exception as exc:
                if not is_deterministic(exc):
                    raise  # Tune retries it
                row, failure = {"status": "failed"}, {"error_line": one_line(exc)}  # its row is written (disk allowing)
    finally:
        logging.getLogger("svconv").removeHandler(notes)
    tune.report({**_scalars(row), "final": True, **failure, **notes.take()})


def _restore_checkpoints(checkpoint: tune.Checkpoint, work: str) -> dict[str, str]:
    """Tune's latest checkpoint of the trial into ``work``, and the epoch files of the others kept beside it
    (``num_to_keep``; and any a driver that was stopped saved after Tune's last record of the trial), so
    that run_trial resumes from the newest readable one. Returns each copy's path -> its file in Tune's
    storage (what a warning about it should name)."""
    checkpoint.to_directory(work)
    latest = Path(checkpoint.path)  # the storage is a filesystem path (sweeps.state): a local path here
    copies = {str(Path(work) / f.name): str(f) for f in latest.glob("epoch_*.pt")}
    try:
        for folder in latest.parent.glob("checkpoint_*"):
            for f in folder.glob("epoch_*.pt"):
                if str(Path(work) / f.name) not in copies:
                    shutil.copyfile(f, Path(work) / f.name)
                    copies[str(Path(work) / f.name)] = str(f)
    except OSError as exc:  # only a fallback: the latest is there
        logging.getLogger(__name__).warning("older checkpoints of %s not copied: %s", latest, exc)
    return copies


class _NoteHandler(logging.Handler):
    """Collects the warnings of the trial's library code, for its next report (``notes``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.aliases: dict[str, str] = {}  # a path in the trial's scratch folder -> the file it is a copy of

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for copy, source in self.aliases.items():
            text = text.replace(copy, source)
        self.lines.append(text)

    def take(self) -> dict[str, str]:
        lines, self.lines = self.lines, []
        return {"notes": "\n".join(lines)} if lines else {}


_DROP = {"checkpoint", "config_json", "error"}


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers and short strings of a metrics dict (Tune results stay small and JSON-friendly)."""
    out = {}
    for k, v in metrics.items():
        if k in _DROP or v is None:
            continue
        if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 200):
            out[k] = v
    return out


def trial_name(trial: Any) -> str:
    """Tune trial name: the grid options that define it (shown in Tune's logs and the dashboard)."""
    return trial.config["trial"]["label"]


def trial_dirname(trial: Any) -> str:
    """Tune trial folder: the trial id (= the Parquet file name), stable across resumes."""
    return trial.config["trial"]["trial_id"]


# --------------------------------------------------------------------------------------------------
# the driver


def run_sweep(
    spec: SweepSpec,
    results_dir: str | os.PathLike | None = None,
    storage: str | os.PathLike | None = None,
    address: str | None = None,
    progress: bool = True,
    callbacks: Sequence[tune.Callback] = (),
) -> SweepOutcome:
    """Run every trial of ``spec`` with Ray Tune and return the sweep's status afterwards.

    Args:
        spec: a validated spec (:func:`sweeps.spec.load_spec`).
        results_dir: root of the Parquet tables; default ``<storage>/<name>/results``.
        storage: storage root of sweep state (see :mod:`sweeps.state`); default ``$SVCONV_SWEEPS`` or
            ``~/svconv_sweeps``.
        address: Ray cluster to join (``auto``, ``HOST:PORT``); None starts a local Ray instance unless
            this process is connected already.
        progress: a progress bar and a line per finished trial on stderr.
        callbacks: more Tune callbacks (loggers, monitors); they see every result, which carries the
            ``node_id`` of the node that ran it.

    A previous run of a sweep with the same name and results folder is replaced (its results stay;
    equal trials rewrite the same files); the state of another results folder is not
    (:func:`sweeps.state.check_owner`, a ValueError). To continue an interrupted sweep instead, use
    :func:`resume_sweep`. While a run or resume of the same name holds the sweep's lock
    (:mod:`sweeps.lock`), this raises :class:`sweeps.lock.SweepLocked` and touches nothing. A dataset
    missing under its ``data_root`` is a ValueError (:func:`check_data`) before anything starts. SIGTERM
    stops it as SIGINT does (:mod:`sweeps.interrupt`).
    """
    state = SweepState.from_spec(spec, results_dir, storage)
    check_data(state.name, [t["config"] for t in state.trials])
    with TermAsInterrupt() as term, SweepLock(state.root, spec.name, "svconv sweep run"):
        check_owner(state)
        if state.tune_dir.exists():
            logger.warning("replacing the saved state of sweep %r in %s (`svconv sweep resume %s` continues a sweep "
                           "instead)", spec.name, state.root, spec.name)
            shutil.rmtree(state.tune_dir)
        os.makedirs(state.results_dir, exist_ok=True)
        state.save()
        return _fit(state, address, progress, callbacks=callbacks, term=term)


def resume_sweep(
    name: str,
    storage: str | os.PathLike | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    callbacks: Sequence[tune.Callback] = (),
    results_dir: str | os.PathLike | None = None,
) -> SweepOutcome:
    """Continue sweep ``name`` from Ray Tune's saved experiment: finished trials are not run again,
    unfinished ones continue from their last checkpoint, pending ones start; with ``retry_failed``
    failed trials run again too (from their last checkpoint). A trial that Tune finished but whose
    Parquet rows (of any table) are missing or unreadable runs again from the start. Refused like
    :func:`run_sweep` while another run holds the sweep's lock. ``results_dir``: find the state of a
    sweep run with a results folder and no storage root (:func:`sweeps.state.default_storage`)."""
    state = SweepState.load(name, storage, results_dir)
    check_data(state.name, [t["config"] for t in state.trials])
    with TermAsInterrupt() as term, SweepLock(state.root, state.name, "svconv sweep resume"):
        if not _has_experiment(state.tune_dir):
            raise ValueError(
                f"sweep {state.name!r} has no Ray Tune state to resume in {state.tune_dir}; "
                f"start it with `svconv sweep run {state.spec_source}`"
            )
        return _fit(state, address, progress, resume="AUTO+ERRORED" if retry_failed else "AUTO", callbacks=callbacks,
                    term=term, retry_failed=retry_failed)


def _has_experiment(path: Path) -> bool:
    """Whether Tune saved an experiment state at ``path`` (what ``tune.run(resume=...)`` continues)."""
    if not path.is_dir():
        return False
    try:
        tune.ExperimentAnalysis(str(path))
    except ValueError:  # "No experiment snapshot file ... was found"
        return False
    return True


#: Tune experiment (under the sweep's folder) that re-runs finished trials whose rows were lost.
RERUN_DIR = "tune-rerun"


def _fit(
    state: SweepState,
    address: str | None,
    progress: bool,
    resume: str | None = None,
    callbacks: Sequence[tune.Callback] = (),
    term: TermAsInterrupt | None = None,
    retry_failed: bool = False,
) -> SweepOutcome:
    """Run (``resume`` None) or resume (a ``tune.run`` resume mode) the sweep's Tune experiment.

    ``term``: SIGTERM's handler, installed again once Ray has started (``ray.init`` replaces it).
    """
    import ray

    from sweeps.trackers import tracker_callbacks

    trackers = tracker_callbacks(state.trackers, state.name, state.results_dir)  # a missing package: before Ray starts
    # Tune warns on every per-epoch checkpoint of short trials; the progress bar says what matters.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started_ray = False
    if not ray.is_initialized():
        # "local" starts a new instance; None would join any `ray start` cluster already on this machine
        ray.init(address=address or "local", log_to_driver=False)
        started_ray = True
    if term is not None:
        term.install()
    try:
        note = check_resources(state.resources, ray.cluster_resources(), len(state.trials), can_grow=address is not None)
        if note:
            logger.warning("%s", note)
        retries = _Retries()
        extra = [retries, _Notes(), *trackers, *callbacks]
        bar = [_Progress(state.name, len(state.trials))] if progress else []
        analysis = _tune_run(state, state.trials, state.tune_dir.name, resume, extra + bar)
        stopped = _stopped_ids(state)
        unfinished = _unfinished(analysis, stopped)
        if resume and not unfinished and not (term and term.received):
            lost = _rows_lost(state, analysis, stopped)
            failed = _failed_finished(state, analysis) if retry_failed else []
            if lost:
                logger.warning("%d trial(s) have damaged or missing rows; running them again: %s", len(lost),
                               ", ".join(t["label"] for t in lost))
            if failed:
                logger.warning("%d trial(s) failed without a retry (a deterministic error); running them again "
                               "(--retry-failed): %s", len(failed), ", ".join(t["label"] for t in failed))
            again = lost + [t for t in failed if t not in lost]
            if again:
                shutil.rmtree(state.root / RERUN_DIR, ignore_errors=True)
                rerun = _tune_run(state, again, RERUN_DIR, None, extra + ([_Progress(state.name, len(again))] if progress else []))
                unfinished = _unfinished(rerun, _stopped_ids(state))
    finally:
        if started_ray:
            ray.shutdown()
    signum = (term.received if term else None) or (signal.SIGINT if unfinished else None)
    return SweepOutcome(status=sweep_status(state.name, state.storage), interrupted=unfinished > 0 or signum is not None,
                        retried=retries.count, signal=signum, storage=state.storage)


def _tune_run(state: SweepState, trials: list[dict[str, Any]], experiment: str, resume: str | None,
              callbacks: list[tune.Callback]) -> Any:
    """``tune.run`` of ``trials`` as experiment ``<sweep folder>/<experiment>``; ``resume``: its resume mode.

    The public ``tune.run`` rather than ``Tuner.restore``: a restored Tuner brings back the callbacks
    pickled with it, and has no public way to be given this process's callbacks.
    """
    trainable = tune.with_resources(sweep_trainable, {"cpu": state.resources["cpus"], "gpu": state.resources["gpus"]})
    scheduler = None
    if state.scheduler:
        scheduler = EarlyStopping(SchedulerSpec(**state.scheduler), state.name, state.results_dir,
                                  {t["trial_id"]: t for t in state.trials})
    # the loggers are the ones in `callbacks` (sweeps.trackers): Tune adds its TensorBoard logger otherwise
    auto = os.environ.get(_AUTO_LOGGERS)
    os.environ[_AUTO_LOGGERS] = "1"
    try:
        return tune.run(
            trainable,
            name=experiment,
            storage_path=str(state.root),
            config={"trial": tune.grid_search(trials), "sweep": state.name, "results_dir": state.results_dir},
            max_concurrent_trials=state.concurrency,
            reuse_actors=state.reuse_workers,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_dirname,
            max_failures=state.retries,
            # two: a damaged latest checkpoint falls back to the one before it (_restore_checkpoints)
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            scheduler=scheduler,
            verbose=0,
            resume=resume or False,
            raise_on_failed_trial=False,  # failures are in the rows and the status; the sweep goes on
        )
    finally:
        if auto is None:
            os.environ.pop(_AUTO_LOGGERS, None)
        else:
            os.environ[_AUTO_LOGGERS] = auto


_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


def _finished(trial: Any) -> bool:
    """The trial made its final report (its status after an interruption says less: Tune stops them all)."""
    return bool((trial.last_result or {}).get("final"))


def _stopped_ids(state: SweepState) -> set[str]:
    """Trials of the sweep that the scheduler stopped (their ``trials`` row says ``stopped``)."""
    from svconv.results.store import read_table_checked

    if not state.scheduler:
        return set()
    rows, _ = read_table_checked(state.results_dir, "trials")
    return set(rows.loc[(rows["sweep"] == state.name) & (rows["status"] == "stopped"), "trial_id"])


def _unfinished(analysis: Any, stopped: set[str]) -> int:
    """Trials that neither finished, nor errored, nor were stopped by the scheduler (the run was interrupted)."""
    return sum(t.status != "ERROR" and not _finished(t) and t.config["trial"]["trial_id"] not in stopped
               for t in analysis.trials)


def _rows_lost(state: SweepState, analysis: Any, stopped: set[str]) -> list[dict[str, Any]]:
    """Trials Tune finished (or the scheduler stopped) whose rows are lost: no readable ``trials`` row (a
    damaged or deleted file), or a damaged ``epochs`` or ``layers`` file."""
    from svconv.results.store import damaged_trials, read_table_checked

    ended = {t.config["trial"]["trial_id"] for t in analysis.trials if _finished(t)} | stopped
    rows, _ = read_table_checked(state.results_dir, "trials")  # a damaged file's trial has no row here
    have = set(rows.loc[rows["sweep"] == state.name, "trial_id"])
    damaged = set(damaged_trials(state.results_dir))
    return [t for t in state.trials if t["trial_id"] in ended and (t["trial_id"] not in have or t["trial_id"] in damaged)]


def _failed_finished(state: SweepState, analysis: Any) -> list[dict[str, Any]]:
    """Trials that ended with a final report and a ``failed`` row: a deterministic error, not retried by Tune
    (its ``ERROR`` trials are ``resume="AUTO+ERRORED"``'s)."""
    from svconv.results.store import read_table_checked

    finished = {t.config["trial"]["trial_id"] for t in analysis.trials if _finished(t)}
    rows, _ = read_table_checked(state.results_dir, "trials")
    failed = set(rows.loc[(rows["sweep"] == state.name) & (rows["status"] == "failed"), "trial_id"])
    return [t for t in state.trials if t["trial_id"] in finished & failed]


def check_resources(per_trial: dict[str, float], total: dict[str, float], n_trials: int, can_grow: bool) -> str | None:
    """Whether one trial fits the cluster: None when it does.

    Args:
        per_trial: ``{"cpus", "gpus"}`` of the spec's ``resources``.
        total: ``ray.cluster_resources()`` (``CPU``, ``GPU``, ... summed over the nodes up now).
        n_trials: trials of the sweep (the pending demand).
        can_grow: the cluster may add nodes (joined with ``--address``: an autoscaling cluster's trials
            wait for new nodes); False for a Ray instance this process started, which never grows.

    Returns a note for stderr when ``can_grow`` and a trial does not fit now; raises ValueError with the
    numbers when it never can (Tune would wait forever with only a warning).
    """
    ask = {"CPU": float(per_trial.get("cpus", 1.0)), "GPU": float(per_trial.get("gpus", 0.0))}
    short = [k for k, v in ask.items() if v > total.get(k, 0.0) + 1e-9]
    if not short:
        return None
    have = ", ".join(f"{total.get(k, 0.0):g} {k}" for k in short)
    want = ", ".join(f"{ask[k]:g} {k}" for k in short)
    if not can_grow:
        raise ValueError(
            f"resources: each trial asks for {want} but this Ray instance has {have} in total, and no "
            "autoscaler can add more; lower the spec's `resources`, or run on a cluster with such nodes (--address)"
        )
    demand = ", ".join(f"{k}: {v:g}" for k, v in ask.items() if v)
    return (
        f"note: each trial asks for {want}; the cluster has {have} now. The trials wait for the autoscaler "
        f"to add such nodes (pending demand: {n_trials} x {{{demand}}}); `ray status` on the head shows its progress"
    )


class EarlyStopping(ASHAScheduler):
    """Ray Tune's ASHA that records each trial it stops as a ``stopped`` trial of the sweep.

    Args:
        spec: the validated ``scheduler`` section.
        sweep: the sweep's name; ``results_dir``: its Parquet tables.
        trials: the sweep's trials by id (``{"trial_id", "label", "config"}``, as in ``sweep.json``).
    """

    def __init__(self, spec: SchedulerSpec, sweep: str, results_dir: str, trials: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(
            time_attr=TIME_ATTR,
            metric=spec.metric,
            mode=spec.mode,
            max_t=spec.max_t,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
            stop_last_trials=False,  # max_t sets the rungs; a trial's own epochs decide when it ends
        )
        self.spec, self.sweep, self.results_dir, self.trials = spec, sweep, results_dir, dict(trials)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action != TrialScheduler.STOP:
            return action
        if result.get(TIME_ATTR, 0) >= result.get("epochs", math.inf):
            return TrialScheduler.CONTINUE  # its last epoch: let it finish and be evaluated
        tid = trial.config["trial"]["trial_id"]
        write_stopped_rows(self.results_dir, self.sweep, self.trials[tid], trial.path, result, self.spec)
        return action


class _Retries(tune.Callback):
    """Tune callback: counts the trial failures that Tune answers with a retry."""

    def __init__(self) -> None:
        self.count = 0

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.count += 1


class _Notes(tune.Callback):
    """Tune callback: prints the ``notes`` of a trial's results (warnings from its worker, e.g. a damaged
    checkpoint it did not resume from) and the line of a deterministic failure, on stderr."""

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("notes"):
            logger.warning("[warning] %s: %s", trial, result["notes"])
        if result.get("final") and result.get("error_line"):
            logger.error("[failed] %s: %s (not retried: it would fail again; fix it, then `svconv sweep resume "
                         "--retry-failed`)", trial, result["error_line"])


class _Progress(tune.Callback):
    """Tune callback: a tqdm bar of finished trials and one line per finished or retried trial.

    The bar is made on first use and left out of pickles (Tune may pickle callbacks with its state).
    """

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.bar = None

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "total": self.total, "bar": None}

    def _bar(self) -> Any:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=f"sweep {self.name}", unit="trial", file=sys.stderr)
        return self.bar

    def _count(self, trials: list) -> None:
        bar = self._bar()
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        if done != bar.n:
            bar.n = done
            bar.refresh()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._count(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        acc = result.get("clean_acc")
        extra = f"  clean_acc={acc:.2f}" if isinstance(acc, float) else ""
        # a trial that ends without its final report was stopped by the scheduler
        status = result.get("status", "done") if _finished(trial) else f"stopped after epoch {result.get(TIME_ATTR)}"
        self._bar().write(f"[{status}] {trial}{extra}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._bar().write(f"[retry] {trial}: failed; running it again from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._bar().write(f"[failed] {trial}: out of retries (see `svconv sweep status {self.name}`)")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._count(trials)
        self._bar().close()
