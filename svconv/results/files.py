"""Durable file writes of the results folder: an fsynced temporary file and a rename, and the cleanup of
temporary files a killed writer left. ``store`` (per-trial files) and ``compact`` (the compacted copy) both
write through here, so neither imports the other for it."""

from __future__ import annotations

import errno
import os
import time
import uuid
from pathlib import Path
from typing import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

#: A ``.tmp`` file older than this (seconds) belongs to a writer that was killed: it is removed.
STALE_TMP_S = 600.0


def atomic_write_table(data: pa.Table, final: Path, metadata: Mapping[bytes, bytes] | None = None) -> None:
    """Write ``data`` to ``final`` through an fsynced temporary file, a rename and an fsync of the folder."""
    if metadata:
        data = data.replace_schema_metadata({**(data.schema.metadata or {}), **metadata})
    tmp = final.parent / f".{final.stem}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder; the rename still happened
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_stale_tmp(folder: Path, prefix: str = ".", older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Remove ``<prefix>*.tmp`` files in ``folder`` last modified more than ``older_than_s`` ago; returns them."""
    removed = []
    cutoff = time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if e.name.startswith(prefix) and e.name.endswith(".tmp"):
            try:
                if e.stat().st_mtime < cutoff:
                    os.unlink(e.path)
                    removed.append(Path(e.path))
            except OSError:  # gone already, or not ours to remove
                pass
    return removed
