"""Early stopping of a sweep's trials: the spec's ``scheduler`` section and the Ray Tune scheduler it builds.

    scheduler:
      type: asha              # the only type: asynchronous successive halving (Li et al. 2020)
      metric: clean_acc       # one of METRICS, reported after every epoch
      mode: max               # max | min (default: max for accuracies, min for losses)
      grace_period: 2         # epochs every trial runs before it can be stopped (default 1)
      max_t: 30               # the epoch scale of ASHA's rungs (default: the most epochs of any trial)
      reduction_factor: 3     # > 1; at each rung a trial below the top 1/reduction_factor stops (default 4)

Rungs sit at ``grace_period * reduction_factor**k`` epochs below ``max_t``. A trial whose metric at a rung
is below the ``1 - 1/reduction_factor`` quantile of the trials already recorded there is stopped; a trial
is never stopped at its own last epoch (it finishes and is evaluated as usual). A stopped trial gets a
``trials`` row with status ``stopped`` (``epochs_done`` epochs, ``clean_acc`` the test accuracy of its last
epoch, the reason in ``error``) and its ``epochs`` rows, written by the driver from the trial's last
checkpoint; Tune keeps it terminated, so ``svconv sweep resume`` does not run it again.

The Tune scheduler itself is :class:`sweeps.driver.EarlyStopping` (this module imports no Ray, so that
specs validate without it).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

SCHEDULER_TYPES = ("asha",)
SCHEDULER_KEYS = ("type", "metric", "mode", "grace_period", "max_t", "reduction_factor")
#: Metrics reported after every epoch, with their natural mode. ``clean_acc`` is that epoch's test
#: accuracy (percent), the same measurement as the trial's final ``clean_acc``.
METRICS = {"clean_acc": "max", "test_acc": "max", "train_acc": "max", "train_loss": "min", "orth_loss": "min"}
MODES = ("max", "min")
#: The result key ASHA counts time in: the trial's epoch (1-based; it continues across resumes).
TIME_ATTR = "epoch"


class SchedulerOptionError(ValueError):
    """A bad ``scheduler`` entry; ``key`` names it (None: the section as a whole)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class SchedulerSpec:
    """A validated ``scheduler`` section; times in epochs."""

    type: str
    metric: str
    mode: str
    grace_period: int
    max_t: int
    reduction_factor: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.type}: {self.mode} {self.metric}, grace_period {self.grace_period}, max_t {self.max_t}, "
                f"reduction_factor {self.reduction_factor:g}")


def _count(key: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SchedulerOptionError(key, f"scheduler {key} must be a whole number of epochs >= {minimum}; got {value!r}")
    return value


def check_scheduler(values: Mapping[str, Any], max_epochs: int) -> SchedulerSpec:
    """Validate a spec's ``scheduler`` mapping against its trials (``max_epochs``: the most epochs of any trial).

    Raises :class:`SchedulerOptionError` (a ValueError) naming the key and its allowed values.
    """
    for key in values:
        if key not in SCHEDULER_KEYS:
            raise SchedulerOptionError(key, f"scheduler: unknown key {key!r}; known keys: {', '.join(SCHEDULER_KEYS)}")
    for key in ("type", "metric"):
        if key not in values:
            raise SchedulerOptionError(None, f"scheduler needs a `{key}`")
    kind = values["type"]
    if kind not in SCHEDULER_TYPES:
        raise SchedulerOptionError("type", f"scheduler type must be one of {', '.join(SCHEDULER_TYPES)}; got {kind!r}")
    metric = values["metric"]
    if metric not in METRICS:
        raise SchedulerOptionError(
            "metric", f"scheduler metric must be one of {', '.join(METRICS)} (reported every epoch); got {metric!r}"
        )
    mode = values.get("mode", METRICS[metric])
    if mode not in MODES:
        raise SchedulerOptionError("mode", f"scheduler mode must be one of {', '.join(MODES)}; got {mode!r}")
    grace = _count("grace_period", values.get("grace_period", 1), 1)
    max_t = _count("max_t", values.get("max_t", max_epochs), 1)
    if grace > max_t:
        raise SchedulerOptionError("grace_period", f"scheduler grace_period ({grace}) must be <= max_t ({max_t})")
    if grace >= max_epochs:
        raise SchedulerOptionError(
            "grace_period",
            f"scheduler grace_period ({grace}) must be below the trials' epochs (at most {max_epochs}): "
            "a trial is never stopped at its last epoch, so no trial could be stopped",
        )
    rf = values.get("reduction_factor", 4)
    if not isinstance(rf, (int, float)) or isinstance(rf, bool) or not math.isfinite(rf) or rf <= 1:
        raise SchedulerOptionError("reduction_factor", f"scheduler reduction_factor must be a number > 1; got {rf!r}")
    return SchedulerSpec(kind, metric, mode, grace, max_t, float(rf))


def write_stopped_rows(
    results_dir: str | os.PathLike,
    sweep: str,
    trial: Mapping[str, Any],
    trial_path: str | os.PathLike,
    result: Mapping[str, Any],
    spec: SchedulerSpec,
) -> None:
    """Write the ``epochs`` rows and the ``stopped`` ``trials`` row of a trial the scheduler stopped.

    Args:
        trial: ``{"trial_id", "label", "config"}``.
        trial_path: the trial's folder in Tune's storage; ``result["checkpoint_dir_name"]`` there holds the
            checkpoint saved with ``result`` (persisted before the result was reported), whose history has
            every epoch so far, including those before a resume.
        result: the epoch's result that the scheduler stopped it on.
    """
    from svconv.config import TrialConfig
    from svconv.results import canonical_json, provenance, write_rows
    from svconv.results.schema import CONFIG_FIELDS
    from svconv.training.checkpoint import checkpoints, load_latest_readable

    tid = trial["trial_id"]
    config = TrialConfig.from_dict(trial["config"])
    folder = result.get("checkpoint_dir_name")
    found = load_latest_readable(checkpoints(Path(trial_path) / folder)[:1]) if folder else None
    epoch_keys = ("epoch", "train_loss", "train_acc", "test_acc", "orth_loss", "lr", "epoch_time_s", "control_time_s")
    # the checkpoint's history; without a readable one (logged), the reported epoch is all there is
    history = found[1]["history"] if found else [{k: result.get(k) for k in epoch_keys}]
    last = history[-1]
    train_time = float(sum(r["epoch_time_s"] for r in history))
    control_time = float(sum(r["control_time_s"] for r in history))
    now = datetime.now(timezone.utc)
    seen = {k: v for k, v in provenance("cpu").items() if k.endswith("_version") or k == "git_commit"}
    row = {
        "trial_id": tid,
        "sweep": sweep,
        "status": "stopped",
        "error": (f"stopped by the {spec.type} scheduler after epoch {last['epoch']} of {config.epochs}: "
                  f"{spec.metric} {result.get(spec.metric)!r} ({spec.mode} is better) below its rung's cutoff"),
        **{name: getattr(config, name) for name, _ in CONFIG_FIELDS},
        "config_json": canonical_json(config.to_dict()),
        "clean_acc": last["test_acc"],
        "final_train_loss": last["train_loss"],
        "epochs_done": len(history),
        "train_time_s": train_time,
        "control_time_s": control_time,
        "control_share": control_time / train_time if train_time > 0 else None,
        "epoch_time_s": train_time / len(history),
        **seen,  # versions of this driver (the worker's device and host are in Tune's results)
        "start_time": now - timedelta(seconds=float(result.get("time_total_s") or 0.0)),
        "end_time": now,
    }
    tag = {"trial_id": tid, "sweep": sweep}
    write_rows(results_dir, "epochs", tid, [{**tag, **r} for r in history])
    write_rows(results_dir, "trials", tid, [row])  # last, as run_trial does: the row means the rest is there
