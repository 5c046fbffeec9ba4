"""Atomic Parquet I/O: one writer per file, named by a deterministic id; readers that survive damage.

A retried or re-run trial writes the same ``<id>.parquet`` again and so replaces its rows. A write goes
to a temporary ``.<id>.<random>.tmp`` in the same folder, is fsynced, renamed over the final name, and
the folder is fsynced: after a crash a file is either the old one, the new one, or a stale ``.tmp``
(removed later by writers of that id and by readers, once older than ``STALE_TMP_S``).

Readers skip a damaged file (zero bytes, truncated, not Parquet) and list it (:class:`DamagedFile`);
they never fail on one. A folder of many per-trial files is read through a compacted copy
(:mod:`svconv.results.compact`), so a 10,000-trial sweep reports in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from svconv.results.files import STALE_TMP_S, atomic_write_table, remove_stale_tmp  # noqa: F401  (STALE_TMP_S: public here too)
from svconv.results.schema import SCHEMA_VERSION, TABLES, schema_for



def canonical_json(config: Mapping[str, Any]) -> str:
    """Key-sorted compact JSON of ``config``: equal configs give equal strings."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_id(config: Mapping[str, Any], length: int = 16) -> str:
    """Deterministic id of a config: the first ``length`` hex digits of its canonical SHA-256."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class DamagedFile:
    """A results file that could not be read: ``file_id`` is the trial id for trial tables."""

    table: str
    file_id: str
    path: Path
    reason: str


def _conform(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = [dict(r) for r in rows]
    unknown = sorted({k for r in rows for k in r} - set(schema.names))
    if unknown:
        raise ValueError(f"columns not in the results schema: {unknown}; add them to svconv.results.schema")
    for r in rows:
        if "schema_version" in schema.names:
            r.setdefault("schema_version", SCHEMA_VERSION)
    cols = {name: [r.get(name) for r in rows] for name in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)


def write_rows(results_dir: str | os.PathLike, table: str, file_id: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as ``results_dir/table/file_id.parquet``, atomically and durably.

    Columns missing from a row are null; a column not in the schema is an error.
    Returns the final path.
    """
    schema = schema_for(table)
    data = _conform(rows, schema)
    folder = Path(results_dir) / table
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{file_id}.parquet"
    remove_stale_tmp(folder, prefix=f".{file_id}.")
    atomic_write_table(data, final)
    return final


def read_table(results_dir: str | os.PathLike, table: str) -> pd.DataFrame:
    """All readable rows of ``table`` under ``results_dir`` as a DataFrame with every schema column.

    Missing folder or no files: an empty frame with the schema's columns. Damaged files are skipped with
    a warning naming them; :func:`read_table_checked` returns them instead.
    """
    frame, damaged = read_table_checked(results_dir, table)
    if damaged:
        warnings.warn(describe_damaged(damaged), stacklevel=2)
    return frame


def read_table_checked(
    results_dir: str | os.PathLike, table: str, keep_file: bool = False
) -> tuple[pd.DataFrame, list[DamagedFile]]:
    """``(rows, damaged files)`` of ``table`` under ``results_dir``: every readable file's rows, and the
    files that could not be read (zero-byte, truncated, not Parquet), which are skipped. ``keep_file``: also
    the column ``_file`` (``svconv.results.compact.FILE_COLUMN``), the file name each row came from."""
    from svconv.results.compact import read_folder

    schema = schema_for(table)
    data, damaged = read_folder(Path(results_dir) / table, schema, keep_file=keep_file)
    return data.to_pandas(), [DamagedFile(table, p.stem, p, why) for p, why in damaged]


def damaged_files(results_dir: str | os.PathLike, tables: Iterable[str] = TABLES) -> list[DamagedFile]:
    """Every damaged file of ``tables`` under ``results_dir``. For ``trials``, ``epochs`` and ``layers`` the
    ``file_id`` is the trial whose rows are lost: run it again (its new files replace the damaged ones)."""
    out: list[DamagedFile] = []
    for table in tables:
        out.extend(read_table_checked(results_dir, table)[1])
    return out


#: The tables written one file per trial, named by its trial id.
TRIAL_TABLES = ("trials", "epochs", "layers")


def damaged_trials(results_dir: str | os.PathLike) -> dict[str, list[DamagedFile]]:
    """Trial id -> its damaged files in :data:`TRIAL_TABLES` under ``results_dir`` (only trials with one):
    a trial whose ``epochs`` or ``layers`` file is damaged has lost rows as surely as one whose
    ``trials`` file is, and is run again the same way."""
    out: dict[str, list[DamagedFile]] = {}
    for d in damaged_files(results_dir, TRIAL_TABLES):
        out.setdefault(d.file_id, []).append(d)
    return out


def compact_results(results_dir: str | os.PathLike) -> list[DamagedFile]:
    """Bring the compacted copy of every table under ``results_dir`` up to date (e.g. when a sweep ends,
    so that its first report opens a few files, not one per trial); returns the damaged files."""
    return damaged_files(results_dir)


def describe_damaged(damaged: Iterable[DamagedFile]) -> str:
    """One line per damaged file, for warnings and CLI messages."""
    items = list(damaged)
    return f"{len(items)} damaged results file(s) skipped:\n" + "\n".join(f"  {d.path}: {d.reason}" for d in items)


def check_writable(results_dir: str | os.PathLike, what: str = "results folder") -> Path:
    """Check that results can be written under ``results_dir`` (created if missing) before any work starts.

    ``what`` names the folder in the message (e.g. ``"sweep state folder (--storage)"``).

    Creates the folder and a probe file in it, then removes the probe. Raises ValueError saying why not
    (a file is in the way, permission denied, read-only file system, ...). Returns the folder.
    """
    path = Path(results_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is not writable: it is an existing file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".svconv-write-check.", suffix=".tmp", dir=path)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} is not writable: {exc.strerror or exc}") from exc
    return path
