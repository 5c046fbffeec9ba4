"""Reading a table folder of many per-trial files fast: a compacted copy, kept up to date by readers.

Sweeps write one small file per trial and table (the unit of atomic writes); opening 30,000 of them
costs about 2 ms each. So a reader keeps ``<table>/_compacted/rows.parquet``: the rows of every file it
read, each tagged with its file name, and (in the file's metadata) a manifest of the ``(inode, size,
mtime)`` each came from. The next reader lists the folder, takes the rows of unchanged files from the
compacted copy and reads only new or rewritten files. Removed files drop out; damaged ones are never
compacted, so they stay listed until rewritten. The copy is only a cache: unreadable, from another
schema, or in a read-only folder, it is ignored and the per-trial files are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from svconv.results.files import atomic_write_table, remove_stale_tmp

#: The compacted copy is rewritten when a read had to open at least this many files one by one.
COMPACT_MIN = 64
#: Files scanned together (the fast path); files read one by one (a scan failed) concatenated together.
SCAN = 2000
BATCH = 512
EMPTY = "empty file (0 bytes): its writer was killed or the disk filled"
CACHE_DIR = "_compacted"
_FILE = FILE_COLUMN = "_file"  # column of the compacted copy: the per-trial file a row came from
_KEY = b"svconv.compact"

Stat = tuple[int, int, int]  # inode, size (bytes), mtime (ns): a rewrite (a rename of a new file) changes it


def read_folder(folder: Path, schema: pa.Schema, keep_file: bool = False) -> tuple[pa.Table, list[tuple[Path, str]]]:
    """Rows of every readable ``*.parquet`` in ``folder`` (in file-name order), and the damaged files with why.

    ``keep_file``: keep the column ``_file``, the name of the file each row came from.
    Also removes stale ``.tmp`` files of killed writers and refreshes the compacted copy when worthwhile.
    """

    files = _list_files(folder)
    if not files:
        return (schema.append(pa.field(_FILE, pa.string())) if keep_file else schema).empty_table(), []
    remove_stale_tmp(folder)
    tagged = schema.append(pa.field(_FILE, pa.string()))
    signature = hashlib.sha256(str(tagged).encode()).hexdigest()[:16]
    cached, manifest = _load_cache(folder / CACHE_DIR / "rows.parquet", tagged, signature)
    fresh = {name: st for name, st in files.items() if manifest.get(name) == st}
    stale = sorted(set(files) - set(fresh))
    parts = [cached.filter(pc.is_in(cached[_FILE], pa.array(sorted(fresh), pa.string())))] if fresh else []
    damaged = [(folder / n, EMPTY) for n in stale if files[n][1] == 0]
    read: dict[str, Stat] = {}
    nonempty = [n for n in stale if files[n][1] > 0]
    for k in range(0, len(nonempty), SCAN):
        chunk = nonempty[k : k + SCAN]
        try:  # the fast path: one multi-threaded scan of many files
            parts.append(_scan(folder, chunk, schema))
            read.update((n, files[n]) for n in chunk)  # stat taken before the read: a later rewrite is re-read
        except (pa.ArrowException, OSError, ValueError):  # a damaged file among them: one by one
            new, got, bad = _read_files(folder, chunk, tagged)
            parts.extend(new)
            read.update(got)
            damaged.extend(bad)
    rows = pa.concat_tables(parts).combine_chunks() if parts else tagged.empty_table()
    rows = rows.sort_by(_FILE)
    if len(read) >= COMPACT_MIN:
        _save_cache(folder / CACHE_DIR, rows, {**fresh, **read}, signature)
    return (rows if keep_file else rows.drop_columns([_FILE])), damaged


def _scan(folder: Path, names: list[str], schema: pa.Schema) -> pa.Table:
    """Rows of ``names`` (all readable) conformed to ``schema``, tagged with their file names."""
    dataset = ds.dataset([str(folder / n) for n in names], schema=schema, format="parquet")
    batches, tags = [], []
    for tagged in dataset.scanner(use_threads=True).scan_batches():
        batches.append(tagged.record_batch)
        tags.append(pa.array([os.path.basename(tagged.fragment.path)] * tagged.record_batch.num_rows, pa.string()))
    table = pa.Table.from_batches(batches, schema=schema)
    return table.append_column(_FILE, pa.chunked_array(tags, pa.string())).combine_chunks()


def _read_files(
    folder: Path, names: list[str], tagged: pa.Schema
) -> tuple[list[pa.Table], dict[str, Stat], list[tuple[Path, str]]]:
    """Read ``names`` one by one: ``(tables with the tagged schema, stat of each file read, damaged files)``.

    Files with one schema are concatenated and cast together, ``BATCH`` at a time: casting each
    one-row table costs more than reading it, and thousands of them cost memory.
    """
    parts: list[pa.Table] = []
    read: dict[str, Stat] = {}
    damaged: list[tuple[Path, str]] = []
    groups: dict[pa.Schema, tuple[list[pa.Table], list[str]]] = {}

    def flush(schema: pa.Schema) -> None:
        tables, batch = groups.pop(schema)
        try:
            parts.append(_to_schema(pa.concat_tables(tables), tagged).combine_chunks())
        except (pa.ArrowException, ValueError) as exc:
            why = f"columns do not match the results schema ({type(exc).__name__}: {str(exc).strip()[:300]})"
            damaged.extend((folder / n, why) for n in batch)
            for n in batch:
                del read[n]

    for name in names:
        outcome = _read_one(folder / name)
        if isinstance(outcome, str):
            damaged.append((folder / name, outcome))
            continue
        table, read[name] = outcome
        table = table.append_column(_FILE, pa.array([name] * table.num_rows, pa.string()))
        tables, batch = groups.setdefault(table.schema, ([], []))
        tables.append(table)
        batch.append(name)
        if len(tables) >= BATCH:
            flush(table.schema)
    for schema in list(groups):
        flush(schema)
    return parts, read, damaged


def _list_files(folder: Path) -> dict[str, Stat]:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out = {}
    for e in entries:
        if e.name.endswith(".parquet"):
            try:
                st = e.stat()
            except FileNotFoundError:  # removed while listing
                continue
            if e.is_file():
                out[e.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _to_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones null (files of an older version), others cast."""
    cols = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _read_one(path: Path) -> tuple[pa.Table, Stat] | str:
    """The file's rows and the stat of exactly the file read, or why it cannot be read."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size == 0:
                return EMPTY
            table = pq.ParquetFile(f).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"not a readable Parquet file ({type(exc).__name__}: {str(exc).strip()[:300]})"
    return table, (st.st_ino, st.st_size, st.st_mtime_ns)


def _load_cache(path: Path, tagged: pa.Schema, signature: str) -> tuple[pa.Table, dict[str, Stat]]:
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[_KEY])
        if meta["signature"] != signature:
            raise ValueError("written for another schema")
        manifest = {name: tuple(st) for name, st in meta["files"].items()}
        return table.replace_schema_metadata(None).cast(tagged), manifest
    except (FileNotFoundError, pa.ArrowException, OSError, ValueError, KeyError, TypeError):
        return tagged.empty_table(), {}  # no usable copy: read every file


def _save_cache(folder: Path, rows: pa.Table, manifest: dict[str, Stat], signature: str) -> None:
    meta = json.dumps({"signature": signature, "files": manifest}, separators=(",", ":")).encode()

    try:
        folder.mkdir(exist_ok=True)
        remove_stale_tmp(folder)
        atomic_write_table(rows, folder / "rows.parquet", {_KEY: meta})
    except OSError:  # a read-only results folder: readers still work, only slower
        pass
