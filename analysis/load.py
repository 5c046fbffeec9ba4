"""Reading a results folder into DataFrames (with the schema passed explicitly)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from svconv.results import DamagedFile, read_table_checked


@dataclass
class Results:
    """The four tables of a results folder; each has every schema column, possibly no rows.

    ``damaged``: files that could not be read (zero-byte, truncated) and so are missing from the tables.
    """

    trials: pd.DataFrame
    epochs: pd.DataFrame
    layers: pd.DataFrame
    bench: pd.DataFrame
    damaged: list[DamagedFile] = field(default_factory=list)


def load_results(results_dir: str | os.PathLike) -> Results:
    """Read ``trials``, ``epochs``, ``layers`` and ``bench`` under ``results_dir``; missing tables are empty,
    damaged files are skipped and listed in ``damaged``."""
    frames, damaged = [], []
    for table in ("trials", "epochs", "layers", "bench"):
        frame, bad = read_table_checked(results_dir, table)
        frames.append(frame)
        damaged.extend(bad)
    return Results(*frames, damaged=damaged)
