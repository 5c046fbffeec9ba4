"""Rows of one phase of the GPU check: one JSON line per item, written as soon as the item ends.

A worker process may be killed at its phase's cap; whatever it had finished is already on disk, and
``<phase>.current`` names the item it was running. Every row has ``phase``, ``item``, ``status``
(``ok`` | ``failed`` | ``skipped`` | ``stopped``), ``detail``, ``error``, ``seconds``; measuring items add
their own columns. Nothing here imports torch, so the orchestrator can read rows without it.
"""

from __future__ import annotations

import importlib
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

STATUSES = ("ok", "failed", "skipped", "stopped")
#: Characters of a traceback kept in a failed row.
ERROR_TAIL = 1500


class Skip(Exception):
    """An item that cannot run here (a missing package, no time left); the message says why."""


class CheckFailed(AssertionError):
    """A correctness check whose numbers are outside its documented tolerance."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition``."""
    if not condition:
        raise CheckFailed(message)


def optional(module: str, what: str) -> Any:
    """Import ``module`` or raise :class:`Skip` saying which package is missing and what is skipped for it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{module.split('.')[0]} is not importable ({exc}); {what} skipped") from exc


def rows_dir(out: str | Path) -> Path:
    return Path(out) / "rows"


def read_rows(out: str | Path, phase: str) -> list[dict[str, Any]]:
    """The rows one phase wrote so far (a half-written last line, from a killed worker, is dropped)."""
    path = rows_dir(out) / f"{phase}.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def current_item(out: str | Path, phase: str) -> str | None:
    """The item a phase's worker was running when it last wrote (None when it was between items)."""
    path = rows_dir(out) / f"{phase}.current"
    return path.read_text().strip() or None if path.exists() else None


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN and infinities become None, numpy/torch scalars plain floats."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return str(value)


def append_row(out: str | Path, phase: str, item: str, status: str, detail: str = "", error: str | None = None,
               seconds: float | None = None, **fields: Any) -> dict[str, Any]:
    """Append one row to ``out/rows/<phase>.jsonl`` (flushed at once) and return it."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    row = _clean({"phase": phase, "item": item, "status": status, "detail": detail, "error": error, "seconds": seconds, **fields})
    folder = rows_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{phase}.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


class Recorder:
    """Runs the items of one phase against its soft deadline and writes their rows.

    Args:
        out: the output folder; rows go to ``out/rows/<phase>.jsonl``.
        phase: the phase's name.
        deadline: ``time.time()`` after which no new item starts (the orchestrator kills the worker a
            little later, so an item that overruns is cut off, never the budget).
    """

    def __init__(self, out: str | Path, phase: str, deadline: float):
        self.out, self.phase, self.deadline = out, phase, deadline
        folder = rows_dir(out)
        folder.mkdir(parents=True, exist_ok=True)
        self.current = folder / f"{phase}.current"
        (folder / f"{phase}.jsonl").write_text("")

    def left(self) -> float:
        """Seconds until the phase's soft deadline."""
        return self.deadline - time.time()

    def row(self, item: str, status: str, detail: str = "", error: str | None = None, seconds: float | None = None,
            **fields: Any) -> dict[str, Any]:
        """Append one row (and flush it to disk)."""
        return append_row(self.out, self.phase, item, status, detail, error, seconds, **fields)

    def item(self, item: str, fn: Callable[[], dict[str, Any] | None], est_s: float = 0.0, always: bool = False,
             **tags: Any) -> dict[str, Any]:
        """Run ``fn`` as one item unless fewer than ``est_s`` seconds are left (``always``: whatever the
        time, for instant items); record and return its row.

        ``fn`` returns the row's measured fields (it may set ``status`` and ``detail``); :class:`Skip`
        makes a ``skipped`` row, :class:`CheckFailed` or any other exception a ``failed`` one.
        """
        left = self.left()
        if not always and (left <= 0 or est_s > left):
            need = f", needs about {est_s:.1f} s" if est_s > 0 else ""
            return self.row(item, "skipped", f"phase time spent ({max(left, 0):.0f} s left{need})", **tags)
        self.current.write_text(item)
        start = time.perf_counter()
        try:
            fields = dict(fn() or {})
            status = fields.pop("status", "ok")
            detail = fields.pop("detail", "")
            row = self.row(item, status, detail, seconds=time.perf_counter() - start, **tags, **fields)
        except Skip as exc:
            row = self.row(item, "skipped", str(exc), seconds=time.perf_counter() - start, **tags)
        except Exception as exc:  # noqa: BLE001 - a failed item is a row; the phase goes on
            tail = "".join(traceback.format_exception(exc))[-ERROR_TAIL:]
            row = self.row(item, "failed", f"{type(exc).__name__}: {exc}"[:300], error=tail, seconds=time.perf_counter() - start, **tags)
        self.current.write_text("")
        return row
