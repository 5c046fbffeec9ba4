"""The numbers the source papers report (``analysis/data/paper_results.csv``), renamed to our columns.

The CSV is shipped with the package. It holds every numeric table of Senderovich et al. 2022 (Tab. 1
LipConvNet with ± over runs, Tab. 2 WRN-16-10 on CIFAR-10, Tab. 3 the grid of the orthogonality-loss
coefficient λ with the maximum empirical Lipschitz ratio "Lip.", Tab. 4 WRN-16-10 on CIFAR-100) and the
AOL README's tables (Prach & Lampert 2022: the models, and the loss-offset ablation with its ``loss_offset``).
Each paper's units (inputs, certificate, AutoAttack radius, "Lip.") are in ``paper_conventions.csv``. It is
a superset of the shared reference copy (``../shared/reference/paper_results.csv``, never edited; a test
checks that every one of its rows is here).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_CSV = Path(__file__).resolve().parent / "data" / "paper_results.csv"
#: The reference copy beside the project (read by the tests only: the packaged CSV must contain it).
REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_results.csv"

#: paper CSV column -> our trials column (``provable_robust`` is certified accuracy at 36/255). A column
#: ``<name>_std`` (the paper's ± over runs) becomes ``<ours>_std``, which the summary tables print as ± .
RENAME = {
    "acc": "clean_acc",
    # their AA: eps 0.5 on inputs normalised by std 0.5 (src/robust_metrics.py, --gouk-transforms), 0.25 px
    "autoattack": "autoattack_025",
    "cifar_c": "corruption_acc",
    "clip_speedup": "speedup",
    # Tab. 3 "Lip.": the maximum empirical Lipschitz ratio (App. C.1), in normalised-input units (<= 1 for
    # their 1-Lipschitz nets); ours in those units is emp_lip_max_normalized (emp_lip_max: pixel units)
    "lipschitz": "emp_lip_max_normalized",
}

SOURCES = {
    "senderovich2022": "Senderovich et al. 2022",
    "prach2022_aol": "Prach & Lampert 2022 (AOL README)",
}

#: Rows per table of each source, as printed in the paper (the tests hold the CSV to them).
TABLE_ROWS = {
    ("senderovich2022", "1"): 9,
    ("senderovich2022", "2"): 16,
    ("senderovich2022", "3"): 18,
    ("senderovich2022", "4"): 16,
    ("prach2022_aol", "readme"): 9,
    ("prach2022_aol", "offset-ablation"): 5,  # AOL-Small, CIFAR-10, loss offset sqrt(2)/16 ... 16 sqrt(2)
}


def paper_csv_path() -> Path:
    """The CSV :func:`load_paper_results` reads by default (the packaged one)."""
    return PAPER_CSV


def load_paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """Paper rows with our column names plus ``source_label`` ("Senderovich et al. 2022, table 2").

    Columns: source, table, dataset, arch, method, clip_to, rank, lam, loss_offset, clean_acc, autoattack_025,
    corruption_acc, ece, cra_36, cra_72, cra_108, cra_255, speedup, compression, emp_lip_max_normalized, and
    ``<metric>_std`` where the paper gives a spread (percent and ratios as the papers print them), and the
    paper's ``preprocessing``, ``inputs`` and ``certificate`` (``analysis.conventions``).
    A missing file gives an empty frame with the key columns.
    """
    path = Path(path) if path is not None else paper_csv_path()
    if not path.is_file():
        return pd.DataFrame(columns=["source", "table", "dataset", "arch", "method", "clip_to", "rank", "lam", "source_label"])
    df = pd.read_csv(path, dtype={"table": str})
    df = df.rename(columns={**RENAME, **{f"{k}_std": f"{v}_std" for k, v in RENAME.items()}})
    for col in ("provable_robust", "provable_robust_std"):
        if col in df.columns:
            ours = col.replace("provable_robust", "cra_36")
            df[ours] = df[ours].combine_first(df.pop(col)) if ours in df.columns else df.pop(col)
    df["source_label"] = [
        f"{SOURCES.get(s, s)}, " + (f"table {t}" if str(t).isdigit() else str(t)) for s, t in zip(df["source"], df["table"])
    ]
    from analysis.conventions import join_conventions  # each paper's input preprocessing and certificate

    return join_conventions(df)


def paper_rows_for(paper: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """The paper rows whose dataset and architecture both equal ours (case-insensitive)."""
    if paper.empty:
        return paper
    m = (paper["dataset"].str.lower() == str(dataset).lower()) & (paper["arch"].str.lower() == str(arch).lower())
    return paper[m]
