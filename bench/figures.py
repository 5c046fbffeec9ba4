"""Plotly figures of bench rows, written as one self-contained HTML file (plotly.js embedded once).

- speedup versus rank: measured ``tt_speedup`` beside the theoretical one, per layer shape / model;
- speedup versus channels, per rank (the ``soc-tt`` runner: Senderovich et al. 2022, Fig. 6);
- peak memory versus rank;
- time versus channels and versus input size, per method (plain layers);
- estimator gap versus time, per method (hover: the configuration).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from bench.summary import with_ratios


def _shape_label(r: Mapping[str, Any]) -> str:
    if r["scope"] == "model":
        return f"{r['arch']} {r['method']}"
    return f"{r['method']} {int(r['c_in'])}->{int(r['c_out'])} k{r['kernel']} n{r['input_size']} s{int(r['stride'])} {r['padding']}"


def speedup_figure(df: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    tt = df[(df["status"] == "ok") & df["rank"].notna() & df["tt_speedup"].notna()].copy()
    if tt.empty:
        return None
    tt["label"] = [_shape_label(r) for _, r in tt.iterrows()]
    for label, g in tt.groupby("label", sort=True):
        g = g.sort_values("rank")
        fig.add_trace(go.Scatter(x=g["rank"], y=g["tt_speedup"], mode="lines+markers", name=f"{label} measured"))
        if g["theory_speedup"].notna().any():
            fig.add_trace(
                go.Scatter(x=g["rank"], y=g["theory_speedup"], mode="lines", line={"dash": "dot"}, name=f"{label} theory")
            )
    fig.update_layout(title="TT speedup versus rank (measured: plain time / TT time; theory: (c/r)^3 or FLOP ratio)",
                      xaxis_title="rank", yaxis_title="speedup", yaxis_type="log")  # fmt: skip
    return fig


def speedup_channels_figure(df: pd.DataFrame):
    """TT speedup versus channels, one line per method, rank and input size (Senderovich et al. 2022, Fig. 6
    for the ``soc-tt`` runner); dotted: the FLOP ratio."""
    import plotly.graph_objects as go

    tt = df[(df["status"] == "ok") & (df["scope"] == "layer") & df["rank"].notna() & df["tt_speedup"].notna()].copy()
    if tt.empty or tt.groupby(["method", "rank", "input_size"])["c_in"].nunique().max() < 2:
        return None
    fig = go.Figure()
    for (method, rank, n), g in tt.groupby(["method", "rank", "input_size"], sort=True):
        g = g.sort_values("c_in")
        fig.add_trace(go.Scatter(x=g["c_in"], y=g["tt_speedup"], mode="lines+markers", name=f"{method} r={int(rank)} n{n}"))
        if g["theory_speedup"].notna().any():
            fig.add_trace(go.Scatter(x=g["c_in"], y=g["theory_speedup"], mode="lines", line={"dash": "dot"},
                                     name=f"{method} r={int(rank)} n{n} theory"))  # fmt: skip
    fig.add_hline(y=1, line={"color": "grey", "dash": "dot"})
    fig.update_layout(title="TT speedup versus channels (plain time / TT time; dotted: FLOP ratio)",
                      xaxis_title="channels", yaxis_title="speedup", xaxis_type="log", yaxis_type="log")  # fmt: skip
    return fig


def memory_figure(df: pd.DataFrame):
    import plotly.graph_objects as go

    ok = df[(df["status"] == "ok") & df["peak_mem_mb"].notna()].copy()
    if ok.empty or ok["rank"].notna().sum() == 0:
        return None
    ok["label"] = [_shape_label(r) for _, r in ok.iterrows()]
    fig = go.Figure()
    for label, g in ok.groupby("label", sort=True):
        if g["rank"].notna().sum() == 0:
            continue
        plain = g[g["rank"].isna()]
        g = g[g["rank"].notna()].sort_values("rank")
        fig.add_trace(go.Scatter(x=g["rank"], y=g["peak_mem_mb"], mode="lines+markers", name=label))
        if not plain.empty:
            fig.add_trace(go.Scatter(x=[g["rank"].min(), g["rank"].max()], y=[plain["peak_mem_mb"].iloc[0]] * 2,
                                     mode="lines", line={"dash": "dash"}, name=f"{label} plain"))  # fmt: skip
    fig.update_layout(title="Peak memory versus rank (dashed: the plain layer)", xaxis_title="rank",
                      yaxis_title="peak memory (MiB)", yaxis_type="log")  # fmt: skip
    return fig


def scaling_figure(df: pd.DataFrame, axis: str):
    """Time versus ``axis`` (``c_in`` or ``input_size``) for plain layers, one line per method."""
    import plotly.graph_objects as go

    ok = df[(df["status"] == "ok") & (df["scope"] == "layer") & df["rank"].isna()].copy()
    if ok.empty:
        return None
    ok["n"] = ok["input_size"].map(lambda s: int(str(s).split("x")[0]))
    other = "n" if axis == "c_in" else "c_in"
    x = "c_in" if axis == "c_in" else "n"
    fig = go.Figure()
    count = 0
    for (method, fixed, stride, pad, iters), g in ok.groupby(["method", other, "stride", "padding", ok["iters"].fillna(-1)], sort=True):
        if g[x].nunique() < 2:
            continue
        g = g.sort_values(x)
        name = f"{method}{'' if iters < 0 else f' x{int(iters)}'} ({'n' if other == 'n' else 'c'}={fixed}, s={stride}, {pad})"
        fig.add_trace(go.Scatter(x=g[x], y=g["time_median_s"], mode="lines+markers", name=name,
                                 error_y={"type": "data", "array": g["time_iqr_s"] / 2, "visible": True}))  # fmt: skip
        count += 1
    if not count:
        return None
    label = "channels (c_in = c_out)" if axis == "c_in" else "input size n (n x n)"
    fig.update_layout(title=f"Time versus {label}", xaxis_title=label, yaxis_title="median time (s)", xaxis_type="log", yaxis_type="log")
    return fig


def gap_figure(df: pd.DataFrame):
    import plotly.graph_objects as go

    ok = df[(df["status"] == "ok") & df["gap"].notna() & (df["scope"] == "layer")].copy()
    if ok.empty:
        return None
    fig = go.Figure()
    for method, g in ok.groupby("method", sort=True):
        hover = [
            f"{_shape_label(r)}<br>rank {'full' if pd.isna(r['rank']) else int(r['rank'])}, iters {'' if pd.isna(r['iters']) else int(r['iters'])}"
            f"<br>value {r['value']:.6g}, exact {r['exact_value']:.6g} ({r['exact_method']})<br>gap {r['gap']:+.3e}"
            for _, r in g.iterrows()
        ]
        fig.add_trace(go.Scatter(x=g["time_median_s"], y=g["gap"], mode="markers", name=method, text=hover, hoverinfo="text"))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    fig.update_layout(title="Gap to the exact value (signed, relative) versus time; controllers: distance to the target after one step",
                      xaxis_title="median time (s)", yaxis_title="(value - exact) / exact", xaxis_type="log")  # fmt: skip
    return fig


def write_figures(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, path: str | os.PathLike, title: str = "svconv bench") -> Path:
    """Write every figure that the rows support into one HTML file (plotly.js embedded once); returns the path."""
    df = with_ratios(rows)
    figs = [
        f
        for f in (
            speedup_figure(df),
            speedup_channels_figure(df),
            memory_figure(df),
            scaling_figure(df, "c_in"),
            scaling_figure(df, "input_size"),
            gap_figure(df),
        )
        if f is not None
    ]
    parts = []
    for i, fig in enumerate(figs):
        fig.update_layout(height=520, legend={"font": {"size": 10}})
        parts.append(fig.to_html(include_plotlyjs=(i == 0), full_html=False))
    body = "\n".join(parts) if parts else "<p>No rows with status ok to plot.</p>"
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
