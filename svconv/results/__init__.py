"""Results: the Parquet schema, atomic writers and readers, provenance of a run."""

from svconv.results.schema import SCHEMA_VERSION, SCHEMAS, TABLES, schema_for
from svconv.results.store import (
    DamagedFile,
    canonical_json,
    check_writable,
    compact_results,
    config_id,
    TRIAL_TABLES,
    damaged_files,
    damaged_trials,
    describe_damaged,
    read_table,
    read_table_checked,
    write_rows,
)
from svconv.results.provenance import provenance

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMAS",
    "TABLES",
    "schema_for",
    "canonical_json",
    "config_id",
    "read_table",
    "read_table_checked",
    "TRIAL_TABLES",
    "damaged_files",
    "damaged_trials",
    "describe_damaged",
    "DamagedFile",
    "check_writable",
    "compact_results",
    "write_rows",
    "provenance",
]
