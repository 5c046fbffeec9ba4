"""The status of a sweep, from its Parquet rows (and Tune's error files for trials that left none).

Every expected trial (from ``sweep.json``) is ``ok``, ``diverged``, ``failed`` or ``stopped`` (by the
spec's early-stopping scheduler, :mod:`sweeps.scheduler`) once its ``trials`` row exists; a trial is
``unreadable`` if any of its ``trials``, ``epochs`` or ``layers`` files is damaged (zero-byte or truncated:
``sweep resume`` runs it again); a trial without a row is ``failed`` if Ray Tune gave up on it (its ``error.txt``, e.g.
a node lost more often than the retries allow) and ``unfinished`` otherwise (pending, running or
interrupted). An ``ok`` trial whose ``learned`` column is false (it ended at chance:
``svconv.metrics.learned``) is counted and listed apart, as "did not learn".
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.state import SweepState

STATUSES = ("ok", "diverged", "failed", "stopped", "unfinished", "unreadable")


@dataclass
class TrialStatus:
    trial_id: str
    label: str
    status: str  # one of STATUSES
    error: str | None = None
    start_time: Any = None  # pandas Timestamp (UTC) of the row, None without one
    epochs_done: int | None = None  # epochs trained (a stopped trial: before it was stopped)
    learned: bool | None = None  # the trials row's learned column: False for a trial that did not learn


@dataclass
class SweepStatus:
    name: str
    results_dir: str
    trials: list[TrialStatus]
    stray_rows: int = 0  # rows of this sweep name whose config is no longer in the spec
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        c = Counter(t.status for t in self.trials)
        self.counts = {s: c.get(s, 0) for s in STATUSES}

    @property
    def complete(self) -> bool:
        """Every trial has ended (ok, diverged, failed or stopped) with readable rows."""
        return self.counts["unfinished"] == 0 and self.counts["unreadable"] == 0

    @property
    def unlearned(self) -> list[TrialStatus]:
        """Trials that ended ok but did not learn (``learned`` false)."""
        return [t for t in self.trials if t.status == "ok" and t.learned is False]

    @property
    def failures(self) -> list[TrialStatus]:
        return [t for t in self.trials if t.status == "failed"]


def sweep_status(name: str, storage: str | os.PathLike | None = None,
                 results_dir: str | os.PathLike | None = None) -> SweepStatus:
    """Status of sweep ``name`` (its state found under ``storage``, or beside ``results_dir``: see
    :mod:`sweeps.state`)."""
    from svconv.results import damaged_trials, read_table_checked

    state = SweepState.load(name, storage, results_dir)
    name = state.name  # as normalised by the load: `NAME/` is NAME
    rows, _ = read_table_checked(state.results_dir, "trials")
    unreadable = {tid: "\n".join(f"{d.path}: {d.reason}" for d in files)
                  for tid, files in damaged_trials(state.results_dir).items()}
    rows = rows[rows["sweep"] == name]
    expected = {t["trial_id"]: t for t in state.trials}
    by_id = {r.trial_id: r for r in rows.itertuples(index=False) if r.trial_id in expected}
    out = []
    for tid, t in expected.items():
        row = by_id.get(tid)
        if tid in unreadable:  # rows lost in one of its tables, whatever the readable ones say
            out.append(TrialStatus(tid, t["label"], "unreadable", unreadable[tid]))
            continue
        if row is not None:
            done, learned = _none(row.epochs_done), _none(row.learned)
            out.append(TrialStatus(tid, t["label"], row.status, _none(row.error), _none(row.start_time),
                                   None if done is None else int(done), None if learned is None else bool(learned)))
            continue
        error = _tune_error(state.tune_dir / tid)
        out.append(TrialStatus(tid, t["label"], "failed" if error else "unfinished", error))
    stray = int((~rows["trial_id"].isin(list(expected))).sum())
    return SweepStatus(name=name, results_dir=state.results_dir, trials=out, stray_rows=stray)


def _none(value: Any) -> Any:
    """pandas reads a null string as NaN and a null timestamp as NaT: both are None here."""
    import pandas as pd

    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _tune_error(trial_dir: Path) -> str | None:
    path = trial_dir / "error.txt"
    if path.is_file():
        text = path.read_text(errors="replace").strip()
        return text or "Ray Tune recorded an error without a message"
    return None


def format_status(status: SweepStatus, full_errors: bool = False) -> str:
    """A human summary: counts per status, then each failure with (the end of) its error."""
    n = len(status.trials)
    lines = [f"sweep {status.name}: {n} trials; results in {status.results_dir}"]
    lines.append("  " + "  ".join(f"{s}: {status.counts[s]}" for s in STATUSES))
    if status.unlearned:
        lines.append(f"  of the ok trials, {len(status.unlearned)} did not learn (test accuracy near chance, loss not falling)")
    if status.stray_rows:
        lines.append(f"  ({status.stray_rows} other rows carry this sweep's name: configs no longer in its spec)")
    if status.failures:
        lines.append("failures:")
        for t in status.failures:
            lines.append(f"  {t.trial_id}  {t.label}")
            lines.extend("    " + line for line in _error_lines(t.error, full_errors))
    stopped = [t for t in status.trials if t.status == "stopped"]
    if stopped:
        lines.append(f"stopped early by the scheduler ({len(stopped)}): "
                     + ", ".join(f"{t.label} (after {t.epochs_done} epochs)" for t in stopped[:10])
                     + (" ..." if len(stopped) > 10 else ""))
    if status.unlearned:
        lines.append(f"did not learn ({len(status.unlearned)}; check the learning rate): "
                     + ", ".join(f"{t.trial_id} {t.label}" for t in status.unlearned[:10])
                     + (" ..." if len(status.unlearned) > 10 else ""))
    unreadable = [t for t in status.trials if t.status == "unreadable"]
    if unreadable:
        lines.append(f"unreadable ({len(unreadable)}: damaged results files; `svconv sweep resume` runs them again):")
        lines.extend(f"  {t.trial_id}  {t.label}\n" + "\n".join(f"    {e}" for e in t.error.splitlines()) for t in unreadable)
    unfinished = [t for t in status.trials if t.status == "unfinished"]
    if unfinished:
        lines.append(f"unfinished ({len(unfinished)}): " + ", ".join(t.label for t in unfinished[:10]) + (" ..." if len(unfinished) > 10 else ""))
    return "\n".join(lines)


def _error_lines(error: str | None, full: bool) -> list[str]:
    text = [line for line in (error or "no error recorded").splitlines() if line.strip()]
    return text if full else text[-3:]


def status_rows(status: SweepStatus) -> list[dict[str, Any]]:
    """One dict per trial (for ``--json``)."""
    return [
        {"trial_id": t.trial_id, "label": t.label, "status": t.status, "error": t.error,
         "start_time": None if t.start_time is None else str(t.start_time), "epochs_done": t.epochs_done,
         "learned": t.learned}
        for t in status.trials
    ]
