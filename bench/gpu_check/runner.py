"""The orchestrator of ``python -m bench.gpu_check``: phases in order of value, each in its own process
with its own cap, inside one time budget; then the summary.

It imports no torch and of svconv only its logging set-up (standard library; the workers import the
rest), so it starts at once, and a phase that hangs or
crashes is killed or recorded without taking the run with it. Schedule: the budget less a reserve for
the summary is split among the selected phases by weight; each phase may run until its cumulative share
of the schedule is spent (time a phase leaves unused passes to the next ones), but never less than its
floor nor past the budget. The worker starts no item after that soft deadline; the orchestrator kills
it a grace period later and records the phase as ``stopped`` with the item it was running.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.gpu_check.record import append_row, current_item, read_rows
from svconv.cli_logging import parse_args_logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
#: phase -> (title, weight in the schedule, floor in seconds); in order of value
PHASES = {
    "env": ("1 environment", 0.05, 20.0),
    "tests": ("2 CUDA-marked tests", 0.17, 20.0),
    "correctness": ("3 correctness on the device", 0.13, 12.0),
    "speed": ("4 speed on the device", 0.42, 12.0),
    "trials": ("5 short trials (AMP)", 0.23, 12.0),
}
DEVICE_PHASES = ("correctness", "speed", "trials")


def summary_reserve(budget: float) -> float:
    """Seconds kept back for writing the summary (pandas/pyarrow import and Parquet writes)."""
    return min(max(6.0, 0.03 * budget), 20.0)


class Clock:
    """The run's budget: ``deadline(phase)`` is the soft deadline of a phase about to start."""

    def __init__(self, budget: float, phases: list[str], start: float):
        self.start, self.budget = start, budget
        self.end = start + budget - summary_reserve(budget)
        weights = [PHASES[p][1] for p in phases]
        total, acc = sum(weights), 0.0
        self.planned: dict[str, float] = {}
        for p, w in zip(phases, weights):
            acc += w
            self.planned[p] = start + (self.end - start) * acc / total

    def left(self) -> float:
        return self.end - time.time()

    def deadline(self, phase: str) -> float:
        return min(max(self.planned[phase], time.time() + PHASES[phase][2]), self.end)

    def hard(self, soft: float) -> float:
        """The kill time of a phase with soft deadline ``soft``: a grace of a quarter of its span (2 to 30 s),
        never past the budget less the summary's reserve."""
        span = max(soft - time.time(), 0.0)
        return min(soft + min(max(0.25 * span, 2.0), 30.0), self.end)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def _run(cmd: list[str], log: Path, hard: float) -> tuple[int | None, bool]:
    """Run ``cmd`` in its own session with output to ``log``; kill its process group at ``hard``.

    Returns ``(returncode, killed)``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=max(hard - time.time(), 0.1)), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session: nothing else is in it
            except ProcessLookupError:
                pass
            proc.wait()
            return proc.returncode, True


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def run_worker(out: Path, phase: str, device: str, size: str, clock: Clock) -> None:
    soft = clock.deadline(phase)
    cmd = [sys.executable, "-m", "bench.gpu_check.worker", phase, "--out", str(out), "--device", device, "--size", size,
           "--deadline", repr(soft)]  # fmt: skip
    log = out / "logs" / f"{phase}.log"
    start = time.time()
    rc, killed = _run(cmd, log, clock.hard(soft))
    took = time.time() - start
    if killed:
        item = current_item(out, phase)
        append_row(out, phase, item or phase, "stopped",
                   f"phase cap reached after {took:.0f} s; killed" + (" while running this item" if item else ""),
                   seconds=took)  # fmt: skip
    elif rc != 0:
        last = (_tail(log).strip().splitlines() or [""])[-1]
        append_row(out, phase, f"{phase} worker", "failed", f"worker exited with code {rc}: {last}"[:300], error=_tail(log), seconds=took)


def run_tests(out: Path, clock: Clock) -> None:
    """Phase 2: ``pytest -m cuda -x -q`` on the test files that hold CUDA-marked tests, in a subprocess."""
    import importlib.util

    phase = "tests"
    (out / "rows").mkdir(parents=True, exist_ok=True)
    (out / "rows" / f"{phase}.jsonl").write_text("")
    try:
        have = importlib.util.find_spec("pytest") is not None
    except ImportError:
        have = False
    if not have:
        append_row(out, phase, "pytest -m cuda", "skipped", "pytest is not importable: the CUDA-marked tests are skipped")
        return
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "pytest.mark.cuda" in p.read_text())
    if not files:
        append_row(out, phase, "pytest -m cuda", "skipped", "no test file with a pytest.mark.cuda test in this checkout")
        return
    soft = clock.deadline(phase)
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-x", "-q", "-p", "no:cacheprovider", *files]
    log = out / "pytest.txt"
    start = time.time()
    rc, killed = _run(cmd, log, soft)
    took = time.time() - start
    text = _tail(log, 4000)
    line = text.strip().splitlines()[-1] if text.strip() else ""
    counts = {f"n_{k.rstrip('s')}": int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", line)}
    item = "pytest -m cuda -x -q " + " ".join(Path(f).name for f in files)
    if killed:
        append_row(out, phase, item, "stopped", f"cap reached after {took:.0f} s; output tail in pytest.txt",
                   error=text[-800:], seconds=took)
    elif rc == 0 and counts.get("n_passed", 0) > 0:
        append_row(out, phase, item, "ok", line, seconds=took, **counts)
    elif rc == 0:
        append_row(out, phase, item, "skipped", f"nothing ran here: {line}", seconds=took, **counts)
    else:
        append_row(out, phase, item, "failed", f"pytest exit code {rc}: {line}", error=text[-1500:], seconds=took, **counts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu_check",
        description="One-shot GPU check: environment, CUDA-marked tests, correctness and speed on the device, "
        "short AMP trials; writes summary.md, Parquet rows and solver_choice.json to --out.",
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--budget-s", type=float, default=360.0, help="total wall-clock budget in seconds (default 360)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="default: cuda when available")
    p.add_argument("--size", choices=("auto", "full", "quick"), default="auto",
                   help="full: the WRN-16-10 shapes; quick: channels/8, sizes/4 (auto: full on cuda, quick on cpu)")  # fmt: skip
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)} (env and the summary always run)")
    a = parse_args_logging(p, argv)
    if not a.budget_s > 0:
        p.error(f"--budget-s must be a positive number of seconds; got {a.budget_s}")
    phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    bad = [x for x in phases if x not in PHASES]
    if bad:
        p.error(f"--phases must name phases among {', '.join(PHASES)}; got {', '.join(bad)}")
    a.phases = ["env", *[x for x in phases if x != "env"]]  # phase 1 resolves the device: always run
    return a


def main(argv: list[str] | None = None) -> int:
    start = time.time()
    a = parse_args(argv)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "rows").glob("*.jsonl"):
        old.unlink()
    selected = [p for p in PHASES if p in a.phases]
    clock = Clock(a.budget_s, selected, start)
    device, size = a.device, a.size
    walls: dict[str, float] = {}
    for phase in PHASES:
        title = PHASES[phase][0]
        began = time.time()
        if phase not in selected:
            append_row(out, phase, title, "skipped", "not selected (--phases)")
        elif phase in DEVICE_PHASES and device not in ("cpu", "cuda"):
            append_row(out, phase, title, "skipped", f"no usable device ({a.device} asked for; see phase 1)")
        elif clock.left() <= 1:
            append_row(out, phase, title, "skipped", "budget spent before this phase")
        else:
            try:
                if phase == "tests":
                    run_tests(out, clock)
                else:
                    run_worker(out, phase, device, size if size != "auto" else "full", clock)
            except Exception as exc:  # noqa: BLE001 - a bug of the check itself is a row too, never a crash
                append_row(out, phase, title, "failed", f"the check itself failed: {type(exc).__name__}: {exc}",
                           error=traceback.format_exc()[-1500:])  # fmt: skip
            if phase == "env":
                ok = [r for r in read_rows(out, "env") if r["item"] == "device" and r["status"] == "ok"]
                device = ok[0]["device"] if ok else "none"
                size = size if size != "auto" else ("full" if device == "cuda" else "quick")
        walls[phase] = time.time() - began
        logger.info("gpu_check: %s: %s (%.0f s)", title, _phase_line(read_rows(out, phase)), time.time() - start)
    from bench.gpu_check.summary import write_summary

    try:
        failed = write_summary(out, budget=a.budget_s, started=start, size=size, device=device, walls=walls)
    except Exception:  # noqa: BLE001 - the rows are on disk; say where, rather than lose the run
        note = traceback.format_exc()[-1500:]
        (out / "summary.md").write_text(f"# GPU check: the summary failed\n\nRows are in rows/*.jsonl.\n\n```\n{note}\n```\n")
        logger.error("gpu_check: writing the summary failed; rows are in %s\n%s", out / "rows", note)
        return 2
    print(f"gpu_check: summary in {out / 'summary.md'} ({time.time() - start:.0f} s of {a.budget_s:.0f} s)", flush=True)
    return 1 if failed else 0


def _phase_line(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "no rows"
