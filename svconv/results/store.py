"""Atomic Parquet I/O: one writer per file, named by a deterministic id.

A retried or re-run trial writes the same ``<id>.parquet`` again and so replaces its rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from svconv.results.schema import SCHEMA_VERSION, schema_for


def canonical_json(config: Mapping[str, Any]) -> str:
    """Key-sorted compact JSON of ``config``: equal configs give equal strings."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_id(config: Mapping[str, Any], length: int = 16) -> str:
    """Deterministic id of a config: the first ``length`` hex digits of its canonical SHA-256."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:length]


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
    """Write ``rows`` as ``results_dir/table/file_id.parquet``, atomically (temporary name, then rename).

    Columns missing from a row are null; a column not in the schema is an error.
    Returns the final path.
    """
    schema = schema_for(table)
    data = _conform(rows, schema)
    folder = Path(results_dir) / table
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{file_id}.parquet"
    tmp = folder / f".{file_id}.{uuid.uuid4().hex}.tmp"
    pq.write_table(data, tmp)
    os.replace(tmp, final)
    return final


def read_table(results_dir: str | os.PathLike, table: str) -> pd.DataFrame:
    """All rows of ``table`` under ``results_dir`` as a DataFrame with every schema column.

    Missing folder or no files: an empty frame with the schema's columns.
    """
    schema = schema_for(table)
    folder = Path(results_dir) / table
    files = sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return schema.empty_table().to_pandas()
    return ds.dataset(files, schema=schema, format="parquet").to_table().to_pandas()
