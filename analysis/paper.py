"""The numbers the source papers report (``reference/paper_results.csv``), renamed to our columns.

Looked up in the shared folder beside the project (``../shared/reference``) when it exists, otherwise
in the copy shipped with the package (``analysis/data``), so an installed package works on its own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_results.csv"
PACKAGED_CSV = Path(__file__).resolve().parent / "data" / "paper_results.csv"

#: paper CSV column -> our trials column (``provable_robust`` is certified accuracy at 36/255)
RENAME = {
    "acc": "clean_acc",
    "autoattack": "autoattack_05",
    "cifar_c": "corruption_acc",
    "clip_speedup": "speedup",
}

SOURCES = {
    "senderovich2022": "Senderovich et al. 2022",
    "prach2022_aol": "Prach & Lampert 2022 (AOL README)",
}


def paper_csv_path() -> Path:
    """The CSV to read: the shared reference if present, else the packaged copy."""
    return SHARED_CSV if SHARED_CSV.is_file() else PACKAGED_CSV


def load_paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """Paper rows with our column names plus ``source_label`` ("Senderovich et al. 2022, table 2").

    Columns: source, table, dataset, arch, method, clip_to, rank, clean_acc, autoattack_05,
    corruption_acc, ece, cra_36, cra_72, cra_108, cra_255, speedup, compression (percent and ratios
    as the papers print them). A missing file gives an empty frame with those columns.
    """
    path = Path(path) if path is not None else paper_csv_path()
    if not path.is_file():
        return pd.DataFrame(columns=["source", "table", "dataset", "arch", "method", "clip_to", "rank", "source_label"])
    df = pd.read_csv(path, dtype={"table": str})
    df = df.rename(columns=RENAME)
    if "provable_robust" in df.columns:
        df["cra_36"] = df["cra_36"].combine_first(df.pop("provable_robust"))
    df["source_label"] = [
        f"{SOURCES.get(s, s)}, " + (f"table {t}" if str(t).isdigit() else str(t)) for s, t in zip(df["source"], df["table"])
    ]
    return df


def paper_rows_for(paper: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """The paper rows whose dataset and architecture both equal ours (case-insensitive)."""
    if paper.empty:
        return paper
    m = (paper["dataset"].str.lower() == str(dataset).lower()) & (paper["arch"].str.lower() == str(arch).lower())
    return paper[m]
