"""Reading a results folder into DataFrames (with the schema passed explicitly)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from svconv.results import read_table


@dataclass
class Results:
    """The four tables of a results folder; each has every schema column, possibly no rows."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    layers: pd.DataFrame
    bench: pd.DataFrame


def load_results(results_dir: str | os.PathLike) -> Results:
    """Read ``trials``, ``epochs``, ``layers`` and ``bench`` under ``results_dir``; missing tables are empty."""
    return Results(*(read_table(results_dir, t) for t in ("trials", "epochs", "layers", "bench")))
