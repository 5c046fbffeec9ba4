"""Phase 6, the summary of a GPU check: ``summary.md``, ``summary.json``, Parquet rows, ``solver_choice.json``.

- ``summary.md``: a status table of the phases, a table of items per phase (ok / failed with the error /
  skipped or stopped with why), the speed tables with the solver that won on each shape, the trials.
- ``speed.parquet`` and ``trials.parquet``: every row of phases 4 and 5 (plain pandas tables: their
  columns are the check's own, not the ``bench``/``trials`` schema of ``svconv.results``; the trials'
  ``svconv.results`` tables are under ``results/``).
- ``solver_choice.json``: per layer shape the fastest solver of ``clip_to_target`` (among results within
  the tolerance) and of the exact singular values, and the rule they suggest for ``solver="auto"``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from bench.gpu_check.record import read_rows

TITLES = {
    "env": "1 environment",
    "tests": "2 CUDA-marked tests",
    "correctness": "3 correctness on the device",
    "speed": "4 speed on the device",
    "trials": "5 short trials (AMP)",
}
DEVICE_SOLVERS = ("eigh", "matmul")


def phase_status(rows: list[dict[str, Any]]) -> str:
    """failed > stopped > ok > skipped: the worst that happened in a phase ('skipped' when nothing ran)."""
    statuses = {r["status"] for r in rows}
    for s in ("failed", "stopped", "ok"):
        if s in statuses:
            return s
    return "skipped"


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return lines


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def winners(rows: list[dict[str, Any]], op: str, solvers: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Per shape of ``op`` (layer and model scope): the ok rows by solver and the fastest of them."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("op") != op or r["status"] != "ok" or r.get("time_median_s") is None:
            continue
        if solvers is not None and r.get("solver") not in solvers:
            continue
        entry = out.setdefault(r["shape"], {"rows": {}, "first": r})
        entry["rows"][r["solver"]] = r
    for entry in out.values():
        entry["winner"] = min(entry["rows"], key=lambda s: entry["rows"][s]["time_median_s"])
    return out


def _speed_sections(rows: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    ops = (
        ("exact-sv", "Exact singular values", lambda r: _ms(r.get("time_median_s"))),
        ("clip-target", "clip_to_target (target 1, tol 1 %): median time, passes, achieved sigma/target",
         lambda r: f"{_ms(r.get('time_median_s'))}, {r.get('passes')} p, {r.get('sigma_ratio', 0) or 0:.3f}"),
        ("clip-1pass", "One plain clip pass (for comparison): time and the sigma/target it leaves",
         lambda r: f"{_ms(r.get('time_median_s'))}, {r.get('sigma_ratio', 0) or 0:.3f}"),
    )  # fmt: skip
    for op, title, fmt in ops:
        op_rows = [r for r in rows if r.get("op") == op]
        if not op_rows:
            continue
        solvers = list(dict.fromkeys(r["solver"] for r in op_rows))
        shapes = list(dict.fromkeys(r["shape"] for r in op_rows))
        best = winners(rows, op)
        table = []
        for shape in shapes:
            cells = []
            for solver in solvers:
                match = [r for r in op_rows if r["shape"] == shape and r["solver"] == solver]
                if not match:
                    cells.append("")
                    continue
                r = match[-1]
                cells.append(fmt(r) if r["status"] == "ok" else r["status"])  # the why is in the item table above
            peak = max((r.get("peak_mem_mb") or 0 for r in op_rows if r["shape"] == shape and r["status"] == "ok"), default=None)
            table.append([shape, *cells, best.get(shape, {}).get("winner", ""), f"{peak:.0f}" if peak else ""])
        lines += [f"### {title}", "", *_table(["shape", *solvers, "winner", "peak MiB"], table), ""]
    est = [r for r in rows if r.get("op") in ("gram-bound", "power-20", "powerqr-4x20")]
    if est:
        gap = lambda r: "" if r.get("gap") is None else f"{r['gap']:+.2e}"  # noqa: E731
        table = [[r["shape"], r["op"], r["status"], _ms(r.get("time_median_s")), gap(r)] for r in est]
        lines += ["### Estimators (gap to the exact norm: >= 0 for the bound, <= 0 for power/PowerQR)", "",
                  *_table(["shape", "estimator", "status", "median", "gap"], table), ""]  # fmt: skip
    return lines


def _gram_size(r: dict[str, Any]) -> int | None:
    if r.get("c_in") is None:
        return None
    return min(int(r["c_out"]), int(r["c_in"]) * int(r["stride"]) ** 2)


def suggest_rule(choices: list[dict[str, Any]]) -> dict[str, Any]:
    """One device solver when it won every layer shape; else a size threshold on the Gram matrix side
    ``g = min(c_out, c_in * s^2)`` when the winners split cleanly by it; else 'mixed'."""
    wins = [(c["gram_size"], c["winner"]) for c in choices if c.get("winner") in DEVICE_SOLVERS and c.get("gram_size")]
    if not wins:
        return {"rule": "unmeasured"}
    names = {w for _, w in wins}
    if len(names) == 1:
        return {"rule": "always", "solver": names.pop()}
    wins.sort()
    for small, large in (("eigh", "matmul"), ("matmul", "eigh")):
        for i in range(1, len(wins)):
            if all(w == small for _, w in wins[:i]) and all(w == large for _, w in wins[i:]):
                return {"rule": "threshold", "gram_size_max_for": small, "threshold": wins[i - 1][0], "above": large}
    return {"rule": "mixed", "winners": wins}


def solver_choice(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    layer_rows = [r for r in rows if r.get("scope") == "layer"]
    out: dict[str, Any] = {**meta, "tol": 0.01}
    for op, key in (("clip-target", "clip_to_target"), ("exact-sv", "exact_sv")):
        device_best = winners(layer_rows, op, solvers=DEVICE_SOLVERS if op == "clip-target" else None)
        overall = winners(layer_rows, op)
        choices = []
        for shape, entry in overall.items():
            r = entry["first"]
            choices.append({
                "shape": shape, "c_in": r.get("c_in"), "c_out": r.get("c_out"), "input_size": r.get("input_size"),
                "stride": r.get("stride"), "gram_size": _gram_size(r), "winner_overall": entry["winner"],
                "winner": device_best.get(shape, {}).get("winner"),
                "median_s": {s: v["time_median_s"] for s, v in entry["rows"].items()},
            })  # fmt: skip
        out[key] = choices
    out["auto_rule"] = suggest_rule(out["clip_to_target"])
    return out


def _meta(env_rows: list[dict[str, Any]], device: str, size: str) -> dict[str, Any]:
    by = {r["item"]: r for r in env_rows}
    dev, ver = by.get("device", {}), by.get("versions", {})
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "device": device,
        "device_name": dev.get("device_name"),
        "size": size,
        "torch": ver.get("torch"),
        "cuda": ver.get("cuda"),
        "git_commit": ver.get("git_commit"),
    }


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> str:
    try:
        import pandas as pd
    except ImportError as exc:
        return f"not written: pandas is not importable ({exc})"
    if not rows:
        return "not written: no rows"
    frame = pd.DataFrame(rows)
    for col in frame.columns:  # mixed-type columns (e.g. a dict of times) as JSON text
        if frame[col].map(lambda v: isinstance(v, (dict, list))).any():
            frame[col] = frame[col].map(lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    try:
        frame.to_parquet(path, index=False)
    except (ImportError, ValueError) as exc:
        return f"not written: {exc}"
    return f"{len(frame)} rows"


def write_summary(out: Path, budget: float, started: float, size: str, device: str, walls: dict[str, float]) -> int:
    """Write the summary files to ``out``; return the number of failed items.

    ``walls``: wall seconds of each phase (process start-up included), in the order the phases ran.
    """
    phases = list(walls)
    rows = {p: read_rows(out, p) for p in phases}
    meta = _meta(rows.get("env", []), device, size)
    used = time.time() - started
    lines = [
        f"# GPU check: {meta['device_name'] or device} ({device}), {meta['date']}",
        "",
        f"Budget {budget:.0f} s, summary written after {used:.0f} s; size {size}; torch {meta['torch']}, "
        f"CUDA {meta['cuda']}; commit {(meta['git_commit'] or 'unknown')[:12]}.",
        "Command: `PYTHONPATH=. python3 -m bench.gpu_check --out DIR` (see README, GPU check).",
        "",
        "## Phases",
        "",
    ]
    table = []
    for p in phases:
        rs = rows[p]
        counts = {s: sum(r["status"] == s for r in rs) for s in ("ok", "failed", "skipped", "stopped")}
        secs = walls[p]
        first_bad = next((r for r in rs if r["status"] in ("failed", "stopped")), None)
        note = f"{first_bad['item']}: {first_bad['detail']}" if first_bad else (rs[0]["detail"] if rs and len(rs) == 1 else "")
        table.append([TITLES.get(p, p), phase_status(rs), *counts.values(), f"{secs:.1f}", note[:160]])
    lines += _table(["phase", "status", "ok", "failed", "skipped", "stopped", "wall s", "note"], table)
    lines += ["", "6 summary: this file, summary.json, speed.parquet, trials.parquet, solver_choice.json.", ""]
    for p in phases:
        lines += [f"## {TITLES.get(p, p)}", ""]
        lines += _table(["item", "status", "detail"], [[r["item"], r["status"], r.get("detail") or ""] for r in rows[p]])
        lines.append("")
        if p == "speed" and rows[p]:
            lines += _speed_sections(rows[p])
    choice = solver_choice(rows.get("speed", []), meta)
    rule = choice["auto_rule"]
    lines += ["## Solver choice for `clip_to_target(solver=\"auto\")` on this device", "",
              f"Measured rule: `{json.dumps(rule)}` (per shape in solver_choice.json).", ""]  # fmt: skip
    parquet = {
        "speed.parquet": _write_parquet(rows.get("speed", []), out / "speed.parquet"),
        "trials.parquet": _write_parquet(rows.get("trials", []), out / "trials.parquet"),
    }
    lines += ["## Files", "", *[f"- {name}: {what}" for name, what in parquet.items()],
              "- rows/*.jsonl: every row as written; logs/: worker output; pytest.txt: phase 2 output;",
              "  results/: the trials' svconv tables", ""]  # fmt: skip
    (out / "summary.md").write_text("\n".join(lines))
    (out / "solver_choice.json").write_text(json.dumps(choice, indent=1))
    everything = {"meta": meta, "budget_s": budget, "used_s": used, "phase_wall_s": walls, "rows": rows}
    (out / "summary.json").write_text(json.dumps(everything, indent=1))
    return sum(r["status"] == "failed" for rs in rows.values() for r in rs)
