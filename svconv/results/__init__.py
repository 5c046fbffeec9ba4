"""Results: the Parquet schema, atomic writers and readers, provenance of a run."""

from svconv.results.schema import SCHEMA_VERSION, SCHEMAS, TABLES, schema_for
from svconv.results.store import canonical_json, config_id, read_table, write_rows
from svconv.results.provenance import provenance

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMAS",
    "TABLES",
    "schema_for",
    "canonical_json",
    "config_id",
    "read_table",
    "write_rows",
    "provenance",
]
