"""What a sweep will cost before it runs: trials × epochs × measured seconds per epoch, in GPU- or CPU-hours.

The seconds come from ``bench/epoch_time.py``: each of its cells is a real trial whose rows it writes under
its ``--results`` folder with sweep name ``bench-epoch-time`` (``trials``: arch, method, rank, dataset,
``config_json``, ``device_name``; ``epochs``: ``epoch_time_s`` and ``control_time_s`` per epoch). A cell's
seconds per epoch are the mean over its epochs, the first left out when there are more (it warms caches up),
as the benchmark's own table does; the control step's seconds are part of them.

A sweep trial takes the measurement of the same ``arch``, ``method`` and ``rank`` on the same kind of device
(a trial runs on CUDA when its ``device`` is ``cuda``, or ``auto`` with GPUs in ``resources``), preferring one
on the trial's dataset, then the newest. The seconds scale with the training images per epoch (``n_train``,
else the dataset's size); across datasets that ignores image size and channels, so such trials are marked
``scaled from DATASET``. Trials without a measurement are listed and left out of the total. Hours are
trial-seconds × the GPUs (or, without GPUs, the CPUs) each trial holds. With a ``scheduler`` the estimate is
an upper bound: it counts every epoch of every trial.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sweeps.spec import SweepSpec, Trial, show_value

#: The sweep name bench/epoch_time.py gives its trials.
BENCH_SWEEP = "bench-epoch-time"
#: Where bench/epoch_time.py writes by default (relative to the working directory).
DEFAULT_TIMINGS = Path("bench_results") / "epoch_time"


def train_images(dataset: str, n_train: int | None) -> int:
    """Training images per epoch: ``n_train``, else the whole training split of ``dataset``."""
    if n_train is not None:
        return n_train
    from svconv.data.mnist5k import TRAIN_PER_CLASS
    from svconv.data.synthetic import N_TRAIN

    sizes = {"mnist5k": 10 * TRAIN_PER_CLASS, "cifar10": 50_000, "cifar100": 50_000, "synthetic": N_TRAIN}
    if dataset not in sizes:
        raise ValueError(f"dataset must be one of {', '.join(sizes)}; got {dataset!r}")
    return sizes[dataset]


@dataclass(frozen=True)
class Measurement:
    """One ``bench.epoch_time`` cell: seconds per epoch (control step included) and of the control step."""

    arch: str
    method: str
    rank: int | None
    dataset: str
    images: int  # training images per epoch
    device: str  # cpu | cuda
    device_name: str
    epoch_s: float
    control_s: float
    trial_id: str
    end_time: Any
    folder: str

    def describe(self) -> str:
        return (f"{self.arch} {self.method} rank {show_value(self.rank)} on {self.dataset} ({self.images} images), "
                f"{self.device_name}: {_num(self.epoch_s)} s/epoch, control {_num(self.control_s)} s  "
                f"[{self.folder}: {self.trial_id}]")


def read_measurements(folders: Sequence[str | os.PathLike]) -> list[Measurement]:
    """The ``bench.epoch_time`` cells with status ok in each results folder (missing folders are skipped)."""
    from svconv.results import read_table

    out = []
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        trials = read_table(folder, "trials")
        trials = trials[(trials["sweep"] == BENCH_SWEEP) & (trials["status"] == "ok")]
        if trials.empty:
            continue
        epochs = read_table(folder, "epochs")
        for row in trials.itertuples(index=False):
            mine = epochs[epochs["trial_id"] == row.trial_id].sort_values("epoch")
            timed = mine.iloc[1:] if len(mine) > 1 else mine
            if timed.empty:
                continue
            config = json.loads(row.config_json)
            out.append(Measurement(
                arch=row.arch, method=row.method, rank=None if _missing(row.rank) else int(row.rank),
                dataset=row.dataset, images=train_images(row.dataset, config.get("n_train")),
                device="cpu" if row.device_name == "cpu" else "cuda", device_name=row.device_name,
                epoch_s=float(timed["epoch_time_s"].mean()), control_s=float(timed["control_time_s"].mean()),
                trial_id=row.trial_id, end_time=row.end_time, folder=str(folder),
            ))
    return out


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


@dataclass(frozen=True)
class TrialCost:
    """One trial's estimate; ``measurement`` None: nothing measured for it (``seconds`` is 0)."""

    trial: Trial
    device: str
    measurement: Measurement | None
    seconds: float = 0.0  # all its epochs
    control_seconds: float = 0.0

    @property
    def scaled(self) -> bool:
        """Measured on another dataset (scaled by images per epoch only)."""
        return self.measurement is not None and self.measurement.dataset != self.trial.config.dataset


@dataclass(frozen=True)
class CostEstimate:
    trials: tuple[TrialCost, ...]
    unit: str  # "GPU" or "CPU": what the hours count
    per_trial: float  # GPUs (or CPUs) each trial holds
    folders: tuple[str, ...]
    upper_bound: bool  # a scheduler may stop trials early

    @property
    def measured(self) -> list[TrialCost]:
        return [t for t in self.trials if t.measurement is not None]

    @property
    def hours(self) -> float:
        return sum(t.seconds for t in self.trials) * self.per_trial / 3600


def trial_device(trial: Trial, gpus: float) -> str:
    """``cuda`` or ``cpu``: where the trial trains (``auto`` takes a GPU when its resources hold one)."""
    device = trial.config.device
    return device if device in ("cpu", "cuda") else ("cuda" if gpus > 0 else "cpu")


def estimate_cost(spec: SweepSpec, measurements: Sequence[Measurement], folders: Sequence[str] = ()) -> CostEstimate:
    """The cost of every trial of ``spec`` from ``measurements`` (:func:`read_measurements`)."""
    gpus, cpus = spec.resources.gpus, spec.resources.cpus
    costs = []
    for trial in spec.trials:
        c = trial.config
        device = trial_device(trial, gpus)
        same = [m for m in measurements if (m.arch, m.method, m.rank, m.device) == (c.arch, c.method, c.rank, device)]
        if not same:
            costs.append(TrialCost(trial, device, None))
            continue
        m = max(same, key=lambda m: (m.dataset == c.dataset, str(m.end_time)))
        scale = c.epochs * train_images(c.dataset, c.n_train) / m.images
        costs.append(TrialCost(trial, device, m, m.epoch_s * scale, m.control_s * scale))
    return CostEstimate(
        trials=tuple(costs), unit="GPU" if gpus > 0 else "CPU", per_trial=gpus if gpus > 0 else cpus,
        folders=tuple(str(f) for f in folders), upper_bound=spec.scheduler is not None,
    )


def format_cost(est: CostEstimate) -> str:
    """The ``--dry-run`` cost section: per method, the total, the rows used, the trials without a measurement."""
    where = ", ".join(f if Path(f).is_dir() else f"{f} (not found)" for f in est.folders) or "(no folder)"
    lines = [f"cost estimate from bench.epoch_time rows in {where}:"]
    if not est.measured:
        lines.append("  no measurement matches any trial (same arch, method, rank and device kind); measure with "
                     "`python bench/epoch_time.py --results DIR --device cpu|cuda ...` and pass --timings DIR")
    else:
        head = ["method", "trials", "epochs", "s/epoch", "control s/epoch", f"{est.unit}-hours"]
        table = [head]
        for method in dict.fromkeys(t.trial.config.method for t in est.measured):
            mine = [t for t in est.measured if t.trial.config.method == method]
            epochs = sum(t.trial.config.epochs for t in mine)
            seconds = sum(t.seconds for t in mine)
            control = sum(t.control_seconds for t in mine)
            table.append([method, str(len(mine)), str(epochs), _num(seconds / epochs), _num(control / epochs),
                          _num(seconds * est.per_trial / 3600)])
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
        bound = " (an upper bound: the scheduler may stop trials early)" if est.upper_bound else ""
        lines.append(f"  total: {_num(est.hours)} {est.unit}-hours for {len(est.measured)} of {len(est.trials)} trials, "
                     f"each holding {est.per_trial:g} {est.unit}{bound}")
        used = dict.fromkeys(t.measurement for t in est.measured)
        lines.append(f"  rows used ({len(used)}):")
        lines += [f"    {m.describe()}" for m in used]
        scaled = [t for t in est.measured if t.scaled]
        if scaled:
            lines.append(f"  scaled from another dataset by images per epoch only ({len(scaled)} trials): "
                         + _labels(scaled, source=True))
    unmeasured = [t for t in est.trials if t.measurement is None]
    if unmeasured:
        lines.append(f"  no measurement ({len(unmeasured)} trials, not in the total): " + _labels(unmeasured, device=True))
    return "\n".join(lines)


def _num(x: float) -> str:
    """Three significant digits, without exponents for large values (2970, not 2.97e+03)."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _labels(costs: Sequence[TrialCost], device: bool = False, source: bool = False, limit: int = 10) -> str:
    def one(t: TrialCost) -> str:
        c = t.trial.config
        where = f" on {t.device}" if device else f" on {c.dataset} from {t.measurement.dataset}" if source else ""
        return f"{c.arch} {c.method} rank {show_value(c.rank)}{where}"

    names = list(dict.fromkeys(one(t) for t in costs))
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")
