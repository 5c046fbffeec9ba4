"""Reading a results folder into DataFrames (with the schema passed explicitly).

Rows a report cannot place are left out and their files listed in ``Results.damaged``, never read as
"nan · nan" rows or counted twice: files that cannot be read, rows without the columns that say what they
are (:data:`REQUIRED`, e.g. a file written by another program or cut down by hand), and second copies of
a trial's rows (a copied file under another name: :func:`_drop_duplicates`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from svconv.results import DamagedFile, read_table_checked
from svconv.results.compact import FILE_COLUMN

#: Columns without which a row cannot be placed in any table of the report (null: the file is damaged).
REQUIRED: dict[str, tuple[str, ...]] = {
    "trials": ("trial_id", "status", "dataset", "arch", "method"),
    "epochs": ("trial_id", "epoch"),
    "layers": ("trial_id", "layer"),
    "bench": (),
}
#: Tables written one file per trial, named by its id (``svconv.results.write_rows``)
PER_TRIAL = ("trials", "epochs", "layers")


@dataclass
class Results:
    """The four tables of a results folder; each has every schema column, possibly no rows.

    ``damaged``: files left out of the tables: unreadable (zero-byte, truncated), missing a column of
    :data:`REQUIRED`, or a second copy of rows already read (``reason`` says which).
    """

    trials: pd.DataFrame
    epochs: pd.DataFrame
    layers: pd.DataFrame
    bench: pd.DataFrame
    damaged: list[DamagedFile] = field(default_factory=list)


def load_results(results_dir: str | os.PathLike) -> Results:
    """Read ``trials``, ``epochs``, ``layers`` and ``bench`` under ``results_dir``; missing tables are empty,
    damaged and duplicate files are skipped and listed in ``damaged``."""
    frames, damaged = [], []
    for table in ("trials", "epochs", "layers", "bench"):
        frame, bad = read_table_checked(results_dir, table, keep_file=True)
        frame, incomplete = _drop_incomplete(frame, table, Path(results_dir) / table)
        frame, copies = _drop_duplicates(frame, table, Path(results_dir) / table)
        frames.append(frame.drop(columns=[FILE_COLUMN]).reset_index(drop=True))
        damaged.extend([*bad, *incomplete, *copies])
    return Results(*frames, damaged=damaged)


def _drop_incomplete(frame: pd.DataFrame, table: str, folder: Path) -> tuple[pd.DataFrame, list[DamagedFile]]:
    """Leave out every file with a row whose :data:`REQUIRED` columns are null."""
    required = list(REQUIRED[table])
    if frame.empty or not required:
        return frame, []
    missing = frame[required].isna()
    bad_files = frame.loc[missing.any(axis=1), FILE_COLUMN].unique()
    out = []
    for name in bad_files:
        cols = [c for c in required if missing.loc[frame[FILE_COLUMN] == name, c].any()]
        why = f"no value in required column(s) {', '.join(cols)}: not written by svconv, or cut down; left out"
        out.append(DamagedFile(table, Path(name).stem, folder / name, why))
    return frame[~frame[FILE_COLUMN].isin(bad_files)], out


def _drop_duplicates(frame: pd.DataFrame, table: str, folder: Path) -> tuple[pd.DataFrame, list[DamagedFile]]:
    """One file per trial id: a per-trial table's rows of a trial found in several files are read from the file
    named by the trial id (the one svconv writes), else from the first by name; the others are listed."""
    if table not in PER_TRIAL or frame.empty:
        return frame, []
    files = frame[["trial_id", FILE_COLUMN]].drop_duplicates()
    files = files.assign(_own=files[FILE_COLUMN] != files["trial_id"] + ".parquet").sort_values(["trial_id", "_own", FILE_COLUMN])
    keep = files.drop_duplicates("trial_id")
    dropped = files[~files.index.isin(keep.index)]
    kept_file = dict(zip(keep["trial_id"], keep[FILE_COLUMN]))
    out = [
        DamagedFile(table, Path(name).stem, folder / name, f"duplicate: rows of trial {tid} already read from {kept_file[tid]}; left out")
        for tid, name in zip(dropped["trial_id"], dropped[FILE_COLUMN])
    ]
    pairs = pd.MultiIndex.from_frame(frame[["trial_id", FILE_COLUMN]])
    return frame[pairs.isin(pd.MultiIndex.from_frame(keep[["trial_id", FILE_COLUMN]]))], out
