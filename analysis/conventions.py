"""How each paper fed its networks and certified them (``analysis/data/paper_conventions.csv``), so that the
report compares its rows with ours under the same input preprocessing.

One row per (source, table): ``preprocessing`` is the name of our convention that reproduces the paper's
(``svconv.models.preprocessing``: standardize | center-scale | none; the ``preprocessing`` column of our
trials), ``inputs`` says what the paper's code does to the images and ``certificate`` what its certified
accuracy divides the margin by. The units of the other columns, each with the file and lines of the
authors' code: ``autoattack_px`` (the radius of the paper's AutoAttack column in [0, 1] pixel units, so the
trials column it is compared with, ``svconv.metrics.autoattack.AUTOATTACK_RADII``) and ``autoattack_code``,
``lipschitz_units`` (of "Lip."), ``orthogonality_loss`` (its normalisation, so the scale of λ) and
``architecture`` (what our name of the network reproduces). Certified radii are in [0, 1] pixel units
everywhere; the convention decides the scale the network sees, and so whether a certified accuracy was
earned under the paper's conditions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CONVENTIONS_CSV = Path(__file__).resolve().parent / "data" / "paper_conventions.csv"
COLUMNS = (
    "source", "table", "preprocessing", "inputs", "certificate",
    "autoattack_px", "autoattack_code", "lipschitz_units", "orthogonality_loss", "architecture",
)  # fmt: skip


def load_paper_conventions(path: str | Path | None = None) -> pd.DataFrame:
    """The conventions table (all columns strings); a missing file gives an empty frame with :data:`COLUMNS`."""
    path = Path(path) if path is not None else CONVENTIONS_CSV
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(path, dtype=str, keep_default_na=False).reindex(columns=list(COLUMNS))


def join_conventions(paper: pd.DataFrame, conventions: pd.DataFrame | None = None) -> pd.DataFrame:
    """``paper`` rows (``source``, ``table`` columns) with ``preprocessing``, ``inputs`` and ``certificate`` added
    from :func:`load_paper_conventions` (null where the table has no row for theirs)."""
    conv = load_paper_conventions() if conventions is None else conventions
    extra = [c for c in COLUMNS[2:] if c not in paper.columns]
    if paper.empty or not extra:
        return paper.reindex(columns=[*paper.columns, *extra])
    keys = paper[["source", "table"]].astype(str)
    joined = keys.merge(conv[["source", "table", *extra]], on=["source", "table"], how="left")
    out = paper.copy()
    for c in extra:
        out[c] = joined[c].to_numpy()
    return out


def convention_notes(ours: pd.Series, paper: pd.DataFrame) -> list[str]:
    """Sentences for a summary table: each paper source's inputs and certificate, and a warning where our
    trials (``ours``: their ``preprocessing`` values) used another convention than the paper rows beside them."""
    notes = []
    if paper.empty or "preprocessing" not in paper:
        return notes
    seen = paper.dropna(subset=["preprocessing"]).drop_duplicates(["source_label"])
    for _, row in seen.iterrows():
        notes.append(f"{row['source_label']}: inputs {row['inputs']}; certificate {row['certificate']}.")
    theirs = set(paper["preprocessing"].dropna())
    mine = set(ours.dropna().astype(str))
    if theirs and mine and mine != theirs:
        notes.append(
            f"Our trials used input preprocessing {', '.join(sorted(mine))}, the paper {', '.join(sorted(theirs))}: the "
            "certified radii are in the same pixel units, but the networks were trained at another input scale, so "
            "certified accuracies are not directly comparable."
        )
    return notes
