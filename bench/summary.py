"""Ratios measured in one run, and the summary table printed by ``svconv bench``.

- ``tt_speedup``: time of the plain layer (or model) / time of this TT row, same method and shape;
  beside it ``theory_speedup`` (``(c/r)^3`` for a layer, the FLOP ratio for a model).
- ``vs_numpy``, ``vs_torch``: time of the NumPy / plain-PyTorch baseline / time of this ``exact`` row,
  same shape and rank.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

#: columns that identify "the same measurement but for the method / rank".
SHAPE_KEYS = ("suite", "scope", "arch", "c_in", "c_out", "kernel", "input_size", "stride", "padding", "device", "dtype")


def _frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return df.reset_index(drop=True)


def _key(row: Mapping[str, Any], keys: Iterable[str]) -> tuple:
    return tuple(None if pd.isna(row.get(k)) else row.get(k) for k in keys)


def with_ratios(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The rows with ``tt_speedup``, ``vs_numpy`` and ``vs_torch`` columns (NaN where there is no partner)."""
    df = _frame(rows)
    for col in ("tt_speedup", "vs_numpy", "vs_torch"):
        df[col] = float("nan")
    if df.empty:
        return df
    ok = df[df["status"] == "ok"]
    times: dict[tuple, float] = {}
    for _, r in ok.iterrows():
        rank = None if pd.isna(r["rank"]) else int(r["rank"])
        iters = None if pd.isna(r.get("iters")) else int(r["iters"])
        k = None if pd.isna(r.get("k")) else int(r["k"])
        times[(*_key(r, SHAPE_KEYS), r["method"], rank, iters, k)] = r["time_median_s"]
    for i, r in ok.iterrows():
        rank = None if pd.isna(r["rank"]) else int(r["rank"])
        iters = None if pd.isna(r.get("iters")) else int(r["iters"])
        k = None if pd.isna(r.get("k")) else int(r["k"])
        shape = _key(r, SHAPE_KEYS)
        t = r["time_median_s"]
        if rank is not None:
            plain = times.get((*shape, r["method"], None, iters, k))
            if plain:
                df.at[i, "tt_speedup"] = plain / t
        if r["method"] == "exact":
            for col, base in (("vs_numpy", "exact-numpy"), ("vs_torch", "exact-torch")):
                other = times.get((*shape, base, rank, None, None))
                if other:
                    df.at[i, col] = other / t
    return df


def _fmt_time(t: float) -> str:
    if pd.isna(t):
        return ""
    return f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s"


def _fmt(x: float, spec: str) -> str:
    return "" if x is None or pd.isna(x) else format(x, spec)


def summary_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """A compact, human-readable table: one line per row, ratios filled in, skipped/failed with the reason."""
    df = with_ratios(rows)
    out = []
    for _, r in df.iterrows():
        if r["scope"] == "model":
            shape = f"{r['arch']} {r['input_size']}"
        else:
            shape = f"{int(r['c_in'])}->{int(r['c_out'])} k{r['kernel']} n{r['input_size']} s{int(r['stride'])} {r['padding']}"
        method = r["method"]
        if not pd.isna(r.get("iters")):
            method += f" x{int(r['iters'])}"
        if not pd.isna(r.get("k")) and r["method"] == "powerqr":
            method += f" k{int(r['k'])}"
        line = {
            "method": method,
            "rank": "full" if pd.isna(r["rank"]) else str(int(r["rank"])),
            "shape": shape,
            "device": f"{r['device']}/{str(r['dtype']).replace('float', 'f')}",
            "status": r["status"],
        }
        if r["status"] == "ok":
            iqr = _fmt_time(r["time_iqr_s"])
            line.update(
                time=_fmt_time(r["time_median_s"]) + (f" ± {iqr}" if iqr else ""),
                mem_mb=_fmt(r["peak_mem_mb"], ".1f"),
                tt_speedup=_fmt(r["tt_speedup"], ".2f"),
                theory=_fmt(r["theory_speedup"], ".1f"),
                vs_numpy=_fmt(r["vs_numpy"], ".1f"),
                vs_torch=_fmt(r["vs_torch"], ".1f"),
                value=_fmt(r["value"], ".5g"),
                gap=_fmt(r["gap"], "+.2e"),
            )
        else:
            line.update(time=str(r["reason"])[:90])
        out.append(line)
    cols = ["method", "rank", "shape", "device", "status", "time", "mem_mb", "tt_speedup", "theory", "vs_numpy", "vs_torch", "value", "gap"]
    return pd.DataFrame(out, columns=cols).astype(object).fillna("")


def format_summary(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> str:
    table = summary_table(rows)
    if table.empty:
        return "(no rows)"
    return table.to_string(index=False)
