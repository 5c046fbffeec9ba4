"""``python -m bench.gpu_check`` on the CPU, as a bare checkout runs it (``PYTHONPATH=.``): it keeps its
budget, lists every phase with a status, writes readable Parquet, and completes with ``skipped`` lines when
the optional packages cannot be imported. The budget is a contract of the script, not a speed claim: the
margin covers interpreter start-up on a loaded machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.gpu_check.runner import PHASES, Clock
from bench.gpu_check.summary import suggest_rule

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("ok", "failed", "skipped", "stopped")
MARGIN_S = 12.0
BLOCKED = ("ray", "plotly", "pyautoattack", "mlxtend", "pytest", "scipy")
BLOCKER = """import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ImportError("blocked by test_gpu_check: " + name)
        return None

sys.meta_path.insert(0, _Blocked())
"""


def _check(out: Path, budget: float, *extra: str, path: list[str] = ()) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*path, str(ROOT)])
    cmd = [sys.executable, "-m", "bench.gpu_check", "--out", str(out), "--device", "cpu", "--budget-s", str(budget), *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget + 60)
    return proc, time.monotonic() - start


def _phase_table(summary: str) -> dict[str, str]:
    """Phase title -> status, from the '## Phases' table of summary.md."""
    section = summary.split("## Phases", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] in {t for t, _, _ in PHASES.values()}:
            table[cells[0]] = cells[1]
    return table


def _rows(out: Path) -> list[dict]:
    return [r for rows in json.loads((out / "summary.json").read_text())["rows"].values() for r in rows]


def test_cpu_run_keeps_its_budget_and_reports_every_phase(tmp_path):
    budget = 35.0
    proc, wall = _check(tmp_path, budget)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: some item failed; never a crash
    assert wall <= budget + MARGIN_S
    table = _phase_table((tmp_path / "summary.md").read_text())
    assert set(table) == {t for t, _, _ in PHASES.values()}
    assert all(status in STATUSES for status in table.values()), table
    rows = _rows(tmp_path)
    device = next(r for r in rows if r["item"] == "device")
    assert device["status"] == "ok" and device["device"] == "cpu"
    speed = pd.read_parquet(tmp_path / "speed.parquet")
    assert {"item", "status", "op", "solver"} <= set(speed.columns) and len(speed) > 0
    assert set(speed["status"]) <= set(STATUSES)
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(trials) > 0 and set(trials["phase"]) == {"trials"}
    assert "auto_rule" in json.loads((tmp_path / "solver_choice.json").read_text())


def test_run_without_optional_packages_completes_with_skipped_lines(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER.format(blocked=BLOCKED))
    out = tmp_path / "out"
    budget = 20.0
    proc, wall = _check(out, budget, "--phases", "env,tests,trials", path=[str(block)])
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert wall <= budget + MARGIN_S
    summary = (out / "summary.md").read_text()
    table = _phase_table(summary)
    assert table["2 CUDA-marked tests"] == "skipped" and "pytest is not importable" in summary
    assert all(status in STATUSES for status in table.values()), table
    rows = _rows(out)
    packages = {r["item"]: r for r in rows if r["item"].startswith("package ")}
    assert {f"package {p}" for p in BLOCKED} <= set(packages)
    assert all(packages[f"package {p}"]["status"] == "skipped" for p in BLOCKED)
    # nothing the check imports pulls a blocked package in at import time
    failed = [r for r in rows if r["status"] == "failed"]
    assert not [r for r in failed if "blocked by test_gpu_check" in (r.get("error") or "") + r["detail"]], failed


def test_modules_the_check_imports_pull_in_no_optional_package(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=BLOCKED))
    modules = (
        "bench.gpu_check.runner", "bench.gpu_check.env", "bench.gpu_check.correctness", "bench.gpu_check.speed",
        "bench.gpu_check.trials", "bench.gpu_check.summary", "svconv.spectrum", "svconv.tt", "svconv.layers",
        "svconv.models", "svconv.methods.base", "svconv.config", "svconv.trial", "svconv.results.provenance",
    )  # fmt: skip
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(n for n in sys.modules if n.split('.')[0] in {BLOCKED!r}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_schedule_gives_each_phase_a_deadline_within_the_budget():
    start = time.time()
    clock = Clock(360.0, list(PHASES), start)
    planned = [clock.planned[p] for p in PHASES]
    assert planned == sorted(planned) and planned[-1] == clock.end < start + 360
    for p in PHASES:
        soft = clock.deadline(p)
        assert soft <= clock.hard(soft) <= clock.end


def test_auto_rule_follows_the_measured_winners():
    def choices(*wins):
        return [{"gram_size": g, "winner": w} for g, w in wins]

    assert suggest_rule(choices((16, "matmul"), (160, "matmul"))) == {"rule": "always", "solver": "matmul"}
    rule = suggest_rule(choices((160, "matmul"), (16, "eigh"), (640, "matmul")))
    assert rule == {"rule": "threshold", "gram_size_max_for": "eigh", "threshold": 16, "above": "matmul"}
    assert suggest_rule(choices((16, "eigh"), (160, "matmul"), (640, "eigh")))["rule"] == "mixed"
    assert suggest_rule([]) == {"rule": "unmeasured"}
