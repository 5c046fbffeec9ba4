"""Which layers a TT rank compressed, capped or kept dense, from the ``layers`` rows (the report's "TT layers").

A layer row's ``rank`` is the rank of the TT / SOC-TT layer as built (``max(r1, r2)``), null for a layer that
stayed dense: ``svconv.tt.to_tt`` and LipConvNet keep a layer dense where its TT form would not have fewer
weights (and ``to_tt`` the first conv), and cap ranks to what a layer can use (channel counts, unfolding
ranks), so a built rank below the trial's is a capped one.
"""

from __future__ import annotations

import pandas as pd

#: layer kinds a TT rank may replace (plain convs, TT convs, SOC and SOC-TT layers)
TT_KINDS = ("conv", "tt", "soc")
COLUMNS = ["dataset", "arch", "rank", "TT layers", "capped (built rank)", "kept dense"]


def _rank(v: object) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def tt_layers_table(trials: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, arch, requested rank) of the trials with a TT rank: how many conv-like layers are
    TT, which were capped below the rank (``layer (rank)``) and which stayed dense; from the first trial of
    each configuration that has layer rows (the layout is fixed by arch and rank). Empty without such rows."""
    if trials.empty or layers.empty or "rank" not in trials or trials["rank"].isna().all():
        return pd.DataFrame(columns=COLUMNS)
    tt_trials = trials[trials["rank"].notna() & trials["trial_id"].isin(layers["trial_id"])]
    out = []
    for (dataset, arch, rank), g in tt_trials.groupby(["dataset", "arch", "rank"], sort=True):
        rows = layers[(layers["trial_id"] == g["trial_id"].iloc[0]) & layers["kind"].isin(TT_KINDS)]
        built = [(name, _rank(r)) for name, r in zip(rows["layer"], rows["rank"])]
        out.append({
            "dataset": dataset, "arch": arch, "rank": int(rank),
            "TT layers": f"{sum(r is not None for _, r in built)} of {len(built)}",
            "capped (built rank)": ", ".join(f"{n} ({r})" for n, r in built if r is not None and r < rank),
            "kept dense": ", ".join(n for n, r in built if r is None),
        })  # fmt: skip
    return pd.DataFrame(out, columns=COLUMNS)
