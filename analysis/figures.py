"""Plotly figures of the report. Each builder returns a figure, or a :class:`Missing` that says why not.

Figures aggregate before plotting (one trace per method or configuration, never one per trial) and
switch to WebGL markers (Scattergl) for large point counts, so that 10,000 trials stay light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.options import method_uses
from analysis.pareto import pareto_mask
from analysis.tables import METRIC_BY_COLUMN, config_label

#: above this many points in one subplot, markers are drawn with WebGL
GL_THRESHOLD = 2000
#: distinct colours for up to 50 methods (trials and bench rows together name that many)
PALETTE = list(dict.fromkeys(qualitative.D3 + qualitative.Dark24 + qualitative.Set2 + qualitative.Light24))
GREY = "rgba(150,150,150,0.45)"
TEMPLATE = "plotly_white"


@dataclass(frozen=True)
class Missing:
    """A figure that could not be drawn, and what data it would need."""

    reason: str


@dataclass(frozen=True)
class Figure:
    name: str  # file-name-safe id, also used for PNG export
    title: str
    fig: go.Figure


def colors_for(names) -> dict[str, str]:
    """A stable colour per name (sorted), shared by every figure of the report."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted({str(n) for n in names}))}


def _scatter(n_points: int) -> Callable[..., go.Scatter]:
    return go.Scattergl if n_points > GL_THRESHOLD else go.Scatter


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01), template=TEMPLATE, height=height,
        margin=dict(l=60, r=20, t=60, b=50), legend=dict(font=dict(size=11)), hoverlabel=dict(namelength=-1),
    )  # fmt: skip
    # no SI prefixes ("2m" for a loss of 0.002); powers of ten where a number needs an exponent
    fig.update_xaxes(exponentformat="power")
    fig.update_yaxes(exponentformat="power")
    _label_log_axes(fig)
    return fig


def log_ticks(values) -> list[float]:
    """Tick positions for a log axis over ``values``: the decades when they span three or more, else 1, 2, 5 per
    decade, so that every tick carries its whole number (plotly's own minor labels are bare digits "2", "5")."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=np.float64)
    if v.size == 0:
        return []
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    for steps in ((1.0,), (1.0, 2.0, 5.0), tuple(float(m) for m in range(1, 10))):
        if len(steps) == 1 and hi - lo < 3:
            continue
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in steps]
        inside = [t for t in ticks if v.min() / 1.05 <= t <= v.max() * 1.05]
        if len(inside) >= 2:
            return inside
    return sorted({float(f"{x:.3g}") for x in v})[:10]  # values too close for round ticks: label them


def _tick_text(v: float) -> str:
    return f"{v:g}" if 1e-3 <= v < 1e5 else f"1e{round(math.log10(v))}" if math.log10(v).is_integer() else f"{v:.0e}"


def _label_log_axes(fig: go.Figure) -> None:
    """Explicit ticks (:func:`log_ticks`) on every log axis of ``fig`` that has none, from the data drawn on it."""
    for axis_name in [k for k in fig.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        axis = fig.layout[axis_name]
        if axis.type != "log" or axis.tickvals is not None:
            continue
        letter, ref = axis_name[0], axis_name[0] + axis_name[5:]
        values: list[float] = []
        for t in fig.data:
            if (getattr(t, f"{letter}axis", None) or letter) == ref and getattr(t, letter, None) is not None:
                values += [float(x) for x in np.asarray(getattr(t, letter), dtype=object) if x is not None and _finite(x)]
        ticks = log_ticks(values)
        if ticks:
            axis.update(tickvals=ticks, ticktext=[_tick_text(t) for t in ticks])


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _str(s: pd.Series) -> pd.Series:
    """Strings for labels and keys, with missing values as "" (pandas' astype(str) keeps NaN)."""
    return s.map(lambda v: "" if v is None or (not isinstance(v, (list, np.ndarray)) and pd.isna(v)) else str(v)).astype(object)


def _side(input_size: object) -> float:
    """Spatial side length of "32x32" (geometric mean for non-square sizes); NaN when unknown."""
    try:
        dims = [float(v) for v in str(input_size).lower().split("x")]
    except ValueError:
        return math.nan
    return float(np.prod(dims) ** (1 / len(dims))) if dims else math.nan


# ---------------------------------------------------------------------------------- bench figures


_SHAPE_KEY = ["suite", "scope", "arch", "method", "iters", "k", "c_in", "c_out", "kernel", "input_size", "stride", "padding", "ndim", "device", "dtype"]


#: bench suites (or runners) whose rows time a training step of a layer type, not a control step
STEP_SUITES = ("zoo",)


def _bench_ok(bench: pd.DataFrame, steps: bool = False) -> pd.DataFrame:
    """The ok rows of control steps (``steps``: of the layer-type suites of :data:`STEP_SUITES` instead)."""
    b = bench[(bench["status"].fillna("ok") == "ok") & (bench["suite"].isin(STEP_SUITES) == steps)].copy()
    if b.empty:
        return b
    for c in ("rank", "c_in", "c_out", "time_median_s", "time_iqr_s", "peak_mem_mb", "gap", "theory_speedup", "stride"):
        b[c] = _num(b[c])
    b["tt"] = b["tt"].fillna(False).astype(bool)
    b["c"] = b[["c_in", "c_out"]].min(axis=1)
    b["facet"] = np.where(b["scope"] == "model", "model " + _str(b["arch"]), "c=" + b["c"].map(lambda v: f"{v:g}"))
    return b


def bench_speedups(bench: pd.DataFrame) -> pd.DataFrame:
    """TT bench rows with ``speedup`` (time of the full counterpart with the same shape, method,
    device and dtype ÷ TT time) and ``theory`` (the ``theory_speedup`` column, else (c/r)^3)."""
    b = _bench_ok(bench)
    key = b[_SHAPE_KEY].apply(_str).agg("|".join, axis=1)
    b["_key"] = key
    full = b[~b["tt"]].groupby("_key")["time_median_s"].median().rename("time_full_s")
    tt = b[b["tt"] & b["rank"].notna()].join(full, on="_key")
    tt["speedup"] = tt["time_full_s"] / tt["time_median_s"]
    tt["theory"] = tt["theory_speedup"].fillna((tt["c"] / tt["rank"]) ** 3)
    return tt.drop(columns="_key")


def _facets(frame: pd.DataFrame, limit: int = 6) -> tuple[list[str], str]:
    facets = sorted(frame["facet"].unique(), key=lambda f: (f.startswith("model"), float(f[2:]) if f.startswith("c=") else 0, f))
    note = ""
    if len(facets) > limit:
        note = f" (showing {limit} of {len(facets)} channel counts)"
        facets = facets[-limit:]
    return facets, note


def speedup_vs_rank(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    sp = bench_speedups(bench) if not bench.empty else pd.DataFrame()
    if sp.empty or sp["speedup"].notna().sum() == 0:
        return Missing("needs bench rows of TT layers (tt = true, with a rank) and of the same shapes in full (tt = false)")
    sp = sp[sp["speedup"].notna()]
    # one panel per shape: channels and map size (a layer) or the model
    sp = sp.assign(facet=np.where(sp["scope"] == "model", sp["facet"], sp["facet"] + " @" + _str(sp["input_size"])))
    order = sorted(sp["facet"].unique(), key=lambda f: (f.startswith("model"), _facet_size(f), f))
    note = ""
    if len(order) > SPEEDUP_FACETS:
        note = f" (the {SPEEDUP_FACETS} largest of {len(order)} shapes)"
        order = order[-SPEEDUP_FACETS:]
    facets = order
    cols = min(4, len(facets))
    nrows = math.ceil(len(facets) / cols)
    specs = [[{} if r * cols + c < len(facets) else None for c in range(cols)] for r in range(nrows)]
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=facets, specs=specs, horizontal_spacing=0.06,
                        vertical_spacing=min(0.12, 0.5 / nrows))  # fmt: skip
    shown: set[str] = set()
    for j, facet in enumerate(facets):
        f = sp[sp["facet"] == facet]
        r, c = j // cols + 1, j % cols + 1
        for method, g in f.groupby("method"):
            agg = g.groupby("rank").agg(speedup=("speedup", "median"), n=("speedup", "size")).reset_index()
            fig.add_trace(
                go.Scatter(
                    x=agg["rank"], y=agg["speedup"], mode="lines+markers", name=str(method), legendgroup=str(method),
                    showlegend=method not in shown, line=dict(color=colors.get(str(method))),
                    customdata=agg["n"], hovertemplate=f"{method}<br>rank %{{x}}<br>speedup %{{y:.3g}}×<br>median of %{{customdata}} rows<extra></extra>",
                ),
                row=r, col=c,
            )  # fmt: skip
            shown.add(str(method))
        th = f.groupby("rank")["theory"].median().reset_index()
        fig.add_trace(
            go.Scatter(
                x=th["rank"], y=th["theory"], mode="lines+markers", name="theory (c/r)³", legendgroup="theory",
                showlegend=j == 0, line=dict(color="black", dash="dash", width=1), marker=dict(symbol="x", size=7),
                hovertemplate="theory<br>rank %{x}<br>%{y:.3g}×<extra></extra>",
            ),
            row=r, col=c,
        )  # fmt: skip
        ranks = sorted(f["rank"].dropna().unique())
        fig.update_xaxes(type="log", tickvals=ranks, ticktext=[f"{v:g}" for v in ranks], row=r, col=c)
    fig.update_xaxes(title_text="TT rank r", row=nrows)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="speedup (full ÷ TT time)", col=1)
    title = "Clip speedup versus TT rank, per layer shape (dashed: theory (c/r)³)" + note
    return Figure("speedup_vs_rank", title, _layout(fig, title, height=max(420, 300 * nrows + 80)))


#: at most this many shapes (subplots) in the speedup figure; the largest are kept
SPEEDUP_FACETS = 8


def _facet_size(facet: str) -> tuple[float, float]:
    """(channels, map side) of a "c=64 @32x32" facet, for ordering; (0, 0) for a model."""
    if not facet.startswith("c="):
        return (0.0, 0.0)
    c, _, size = facet[2:].partition(" @")
    return (float(c), _side(size) if size else 0.0)


def _modal(frame: pd.DataFrame, col: str) -> object:
    counts = _str(frame[col]).value_counts()
    return counts.index[0] if len(counts) else None


def _time_versus(bench: pd.DataFrame, colors: dict[str, str], x: str) -> Figure | Missing:
    b = _bench_ok(bench) if not bench.empty else pd.DataFrame()
    if b.empty:
        return Missing("needs bench rows with status ok")
    b = b[(b["scope"] == "layer") & b["time_median_s"].notna()]
    if b.empty:
        return Missing("needs layer-scope bench rows with a measured time")
    b = b.assign(side=b["input_size"].map(_side))
    fixed_col, xcol, xlabel, name = (
        ("input_size", "c", "channels c = min(c_in, c_out)", "time_vs_channels")
        if x == "channels"
        else ("c", "side", "input size n (n × n)", "time_vs_input_size")
    )
    fixed = _modal(b, fixed_col)
    sl = b[_str(b[fixed_col]) == fixed]
    if sl[xcol].nunique() < 2:
        return Missing(f"needs bench rows at two or more {xlabel.split(' (')[0].split(' =')[0]} with the same {fixed_col}")
    sl = sl.assign(variant=np.where(sl["tt"], "TT r=" + sl["rank"].map(lambda r: f"{r:g}"), "full"))
    fig = go.Figure()
    devices = _str(sl["device"]) + "/" + _str(sl["dtype"])
    multi_dev = devices.nunique() > 1
    single = 0  # series measured at one x only: a dot says nothing about growth, and clutters
    multi_suite = sl["suite"].nunique() > 1  # suites time different things (one pass, a clip to a target): never joined
    for (method, variant, dev, suite), g in sl.groupby(["method", "variant", devices, _str(sl["suite"])], sort=True):
        agg = g.groupby(xcol).agg(t=("time_median_s", "median"), iqr=("time_iqr_s", "median")).reset_index()
        if len(agg) < 2:
            single += 1
            continue
        label = f"{method} {variant}" + (f" ({dev})" if multi_dev else "") + (f" [{suite}]" if multi_suite else "")
        dash = None if variant == "full" else "dot"
        fig.add_trace(
            go.Scatter(
                x=agg[xcol], y=agg["t"], mode="lines+markers", name=label, legendgroup=str(method),
                line=dict(color=colors.get(str(method)), dash=dash),
                error_y=dict(type="data", array=agg["iqr"] / 2, visible=bool(agg["iqr"].notna().any())),
                hovertemplate=f"{label}<br>{xlabel.split(' (')[0]} %{{x:g}}<br>%{{y:.3g}} s<extra></extra>",
            )
        )  # fmt: skip
    fixed_text = f"input {fixed}" if fixed_col == "input_size" else f"c = {float(fixed):g}"
    title = f"Time of one control step versus {'channels' if x == 'channels' else 'input size'} ({fixed_text})"
    if single:
        title += f"; {single} series measured at one {'channel count' if x == 'channels' else 'size'} not drawn"
    fig.update_xaxes(type="log", title_text=xlabel)
    fig.update_yaxes(type="log", title_text="median time (s)")
    return Figure(name, title, _layout(fig, title, height=460))


def time_vs_channels(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    return _time_versus(bench, colors, "channels")


def time_vs_input_size(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    return _time_versus(bench, colors, "input_size")


def memory_vs_rank(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    b = _bench_ok(bench) if not bench.empty else pd.DataFrame()
    if b.empty or b["peak_mem_mb"].notna().sum() == 0:
        return Missing("needs bench rows with peak memory (peak_mem_mb)")
    b = b[b["peak_mem_mb"].notna()]
    b = b.assign(r=np.where(b["tt"], b["rank"], b["c"]))  # a full layer is rank c
    b = b[b["r"].notna()]
    if b.empty:
        return Missing("needs bench rows with peak memory and a rank or channel count")
    facets, note = _facets(b)
    fig = make_subplots(rows=1, cols=len(facets), subplot_titles=facets, shared_yaxes=True)
    shown: set[str] = set()
    for j, facet in enumerate(facets, start=1):
        for method, g in b[b["facet"] == facet].groupby("method"):
            agg = g.groupby("r")["peak_mem_mb"].median().reset_index()
            fig.add_trace(
                go.Scatter(
                    x=agg["r"], y=agg["peak_mem_mb"], mode="lines+markers", name=str(method), legendgroup=str(method),
                    showlegend=method not in shown, line=dict(color=colors.get(str(method))),
                    hovertemplate=f"{method}<br>rank %{{x:g}}<br>%{{y:.4g}} MiB<extra></extra>",
                ),
                row=1, col=j,
            )  # fmt: skip
            shown.add(str(method))
    title = "Peak memory of a control step versus rank (full layer drawn at r = c)" + note
    fig.update_xaxes(type="log", title_text="rank r")
    fig.update_yaxes(title_text="peak memory (MiB)", col=1)
    return Figure("memory_vs_rank", title, _layout(fig, title))


def zoo_steps(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    """Time and peak memory of one training step (forward + backward) per 1-Lipschitz layer type
    (``svconv bench zoo``), bars grouped by layer shape."""
    b = _bench_ok(bench, steps=True) if not bench.empty else pd.DataFrame()
    if b.empty or b["time_median_s"].notna().sum() == 0:
        return Missing("needs rows of the zoo suite (svconv bench zoo)")
    b = b.assign(shape=b["c"].map(lambda v: f"c={v:g}") + " @" + _str(b["input_size"]) + " · " + _str(b["device"]))
    agg = b.groupby(["shape", "method"]).agg(t=("time_median_s", "median"), iqr=("time_iqr_s", "median"),
                                             mem=("peak_mem_mb", "median")).reset_index()  # fmt: skip
    fig = make_subplots(rows=1, cols=2, subplot_titles=["time of one step (s)", "peak memory (MiB)"], horizontal_spacing=0.08)
    for method, g in agg.groupby("method", sort=True):
        for col, y, fmt in ((1, "t", "%{y:.3g} s"), (2, "mem", "%{y:.4g} MiB")):
            fig.add_trace(
                go.Bar(x=g["shape"], y=g[y], name=str(method), legendgroup=str(method), showlegend=col == 1,
                       marker_color=colors.get(str(method)), hovertemplate=f"{method}<br>%{{x}}<br>{fmt}<extra></extra>",
                       error_y=dict(type="data", array=g["iqr"] / 2, visible=bool(g["iqr"].notna().any())) if y == "t" else None),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", col=1)
    fig.update_yaxes(rangemode="tozero", col=2)
    title = "1-Lipschitz layer types: one training step (forward + backward), per layer shape"
    return Figure("zoo_steps", title, _layout(fig, title))


def gap_vs_time(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    b = _bench_ok(bench) if not bench.empty else pd.DataFrame()
    if b.empty:
        return Missing("needs bench rows with status ok")
    b = b[b["gap"].notna() & b["time_median_s"].notna()]
    if b.empty:
        return Missing("needs bench rows with an estimate and its exact value (gap)")
    gap = b["gap"].abs()
    positive = gap[gap > 0]
    floor = (positive.min() / 10) if len(positive) else 1e-16
    b = b.assign(absgap=gap.clip(lower=floor))
    b = b.assign(
        shape=b["c_in"].map(lambda v: f"{v:g}") + "→" + b["c_out"].map(lambda v: f"{v:g}") + " " + _str(b["kernel"])
        + " @" + _str(b["input_size"]) + np.where(b["tt"], " TT r=" + b["rank"].map(lambda v: f"{v:g}"), "")
    )  # fmt: skip
    fig = go.Figure()
    trace = _scatter(len(b))
    for method, g in b.groupby("method"):
        fig.add_trace(
            trace(
                x=g["time_median_s"], y=g["absgap"], mode="markers", name=str(method),
                marker=dict(color=colors.get(str(method)), size=7, opacity=0.8), text=g["shape"],
                customdata=g["gap"], hovertemplate=f"{method}<br>%{{text}}<br>%{{x:.3g}} s<br>gap %{{customdata:.3g}}<extra></extra>",
            )
        )  # fmt: skip
    title = f"Estimator gap |value − exact| / exact versus time (exact results drawn at {floor:.0e})"
    fig.update_xaxes(type="log", title_text="median time (s)")
    fig.update_yaxes(type="log", title_text="relative gap")
    return Figure("gap_vs_time", title, _layout(fig, title, height=460))


#: control rows whose achieved norm lies within this relative distance of the target count as on target
TARGET_TOL = 0.01
#: at most this many shapes (subplots) in the achieved-norm figure; those with the most methods are kept
CONTROL_FACETS = 12


def control_points(bench: pd.DataFrame) -> pd.DataFrame:
    """Control rows with what they achieved: ``ratio`` (``sigma_after / target``; model rows already hold
    the worst layer's ratio in ``sigma_after``), ``off`` (``|ratio - 1|``), ``shape`` (the facet), the
    median time and peak memory per (shape, method, iters, device, dtype), and ``on_front``: not dominated
    in (time, off) within its shape — no other method there is both faster and closer to the target."""
    b = _bench_ok(bench) if not bench.empty else pd.DataFrame()
    if b.empty:
        return pd.DataFrame()
    for c in ("sigma_after", "target", "passes", "rel_change", "iters"):
        b[c] = _num(b[c])
    b = b[b["sigma_after"].notna() & b["target"].notna() & b["time_median_s"].notna()]
    if b.empty:
        return pd.DataFrame()
    model = b["scope"] == "model"
    tt = np.where(b["tt"], " TT r=" + b["rank"].map(lambda v: f"{v:g}"), "")
    layer_shape = (b["c_in"].map(lambda v: f"{v:g}") + "→" + b["c_out"].map(lambda v: f"{v:g}") + " @" + _str(b["input_size"])
                   + np.where(b["stride"] > 1, " s" + b["stride"].map(lambda v: f"{v:g}"), ""))  # fmt: skip
    # a model measured at several input sizes (resnet18 at 32x32 and 224x224) gets one facet per size
    sizes = b[model].groupby(_str(b["arch"])[model])["input_size"].transform(lambda v: _str(v).nunique())
    at = pd.Series("", index=b.index, dtype=object)
    at[sizes[sizes > 1].index] = " @" + _str(b.loc[sizes[sizes > 1].index, "input_size"])
    b = b.assign(
        ratio=np.where(model, b["sigma_after"], b["sigma_after"] / b["target"]),
        shape=np.where(model, "model " + _str(b["arch"]) + at, layer_shape) + tt,
    )
    b["iters"] = b["iters"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    keys = ["shape", "scope", "method", "iters", "device", "dtype"]
    b[keys] = b[keys].apply(_str)
    pts = b.groupby(keys, sort=True).agg(
        time_s=("time_median_s", "median"), ratio=("ratio", "median"), passes=("passes", "median"),
        rel_change=("rel_change", "median"), peak_mem_mb=("peak_mem_mb", "median"), n=("ratio", "size"),
    ).reset_index()  # fmt: skip
    pts["off"] = (pts["ratio"] - 1).abs()
    pts["on_front"] = False
    for _, g in pts.groupby(["shape", "device", "dtype"]):
        pts.loc[g.index, "on_front"] = pareto_mask(g[["time_s", "off"]].to_numpy(), [False, False])
    return pts


def control_pareto(bench: pd.DataFrame, colors: dict[str, str]) -> Figure | Missing:
    """Time against the achieved ``sigma_after / target`` per method (``svconv bench clip-to-target``), one
    subplot per layer shape or model; the methods no other beats in both time and closeness are coloured,
    the dominated ones grey; the band is ``1 ± TARGET_TOL``."""
    pts = control_points(bench)
    if pts.empty:
        return Missing("needs control bench rows with sigma_after and target (svconv bench clip-to-target)")
    order = pts.groupby("shape").agg(model=("scope", lambda s: (s == "model").any()), methods=("method", "nunique"))
    facets = list(order.index)
    note = ""
    if len(facets) > CONTROL_FACETS:
        keep = set(order.sort_values("methods", ascending=False, kind="stable").index[:CONTROL_FACETS])
        note = f" (showing the {CONTROL_FACETS} of {len(facets)} shapes with the most methods)"
        facets = [f for f in facets if f in keep]
    facets.sort(key=lambda f: (bool(order.loc[f, "model"]), f))
    cols = min(3, len(facets))
    nrows = math.ceil(len(facets) / cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=facets, horizontal_spacing=0.06, vertical_spacing=0.5 / nrows)
    shown: set[str] = set()
    hover = ("%{text}<br>σ_after / target %{x:.4f}<br>%{y:.3g} s<br>passes %{customdata[0]:.0f}, "
             "rel. change %{customdata[1]:.3g}<extra></extra>")  # fmt: skip
    for k, facet in enumerate(facets):
        r, c = k // cols + 1, k % cols + 1
        f = pts[pts["shape"] == facet]
        f = f.assign(text=f["method"] + np.where(f["iters"] != "", " ×" + f["iters"], ""))
        for front, g in ((False, f[~f["on_front"]]), (True, f[f["on_front"]])):
            for method, gm in g.groupby("method") if front else [("dominated", g)]:
                if gm.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=gm["ratio"], y=gm["time_s"], mode="markers", name=str(method), legendgroup=str(method),
                        showlegend=str(method) not in shown, text=gm["text"], customdata=gm[["passes", "rel_change"]],
                        hovertemplate=hover,
                        marker=dict(color=colors.get(str(method)), size=9, line=dict(color="black", width=1))
                        if front else dict(color=GREY, size=7),
                    ),
                    row=r, col=c,
                )  # fmt: skip
                shown.add(str(method))
        # after the traces: plotly adds no shape to a subplot that is still empty
        fig.add_vrect(x0=1 - TARGET_TOL, x1=1 + TARGET_TOL, fillcolor="rgba(44,160,44,0.25)", line_width=0, layer="below",
                      row=r, col=c)  # fmt: skip
    title = f"Time against achieved σ_after / target (green: within ±{TARGET_TOL:.0%}; grey: dominated)" + note
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="σ_after / target", row=nrows)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="median time (s)", col=1)
    return Figure("control_pareto", title, _layout(fig, title, height=max(420, 300 * nrows + 80)))


# ---------------------------------------------------------------------------------- trial figures

#: (x metric, y metric) panels of the Pareto figure; the first x column with data is used. ``train_hours``: the
#: training time per trial (``train_time_s``) in hours; certified accuracy is at ε = 36/255.
PARETO_PAIRS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("train_hours",), "clean_acc"),
    (("train_hours",), "cra_36"),
    (("cra_36",), "clean_acc"),
    (("autoattack_025", "autoattack_05", "autoattack_36"), "clean_acc"),
    (("ece",), "clean_acc"),
    (("corruption_acc",), "clean_acc"),
    (("speedup",), "clean_acc"),
    (("compression",), "clean_acc"),
)
#: marker per TT rank (full rank: a circle), in rank order
RANK_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross", "triangle-down", "pentagon", "star", "hexagon", "x")


def _metric_label(col: str, hours: str) -> str:
    if col == "train_hours":
        return f"training time ({hours})"
    m = METRIC_BY_COLUMN[col]
    return m.label


def _sense_max(col: str) -> bool:
    return False if col == "train_hours" else METRIC_BY_COLUMN[col].sense == "max"


def rank_symbols(ranks) -> dict[str, str]:
    """A marker symbol per rank label ("full", "TT r=8", ...), full first, then ranks ascending."""
    labels = sorted({_rank_label(r) for r in ranks}, key=lambda l: -1 if l == "full" else int(l.split("=")[1]))
    return {l: RANK_SYMBOLS[i % len(RANK_SYMBOLS)] for i, l in enumerate(labels)}


def _rank_label(r: object) -> str:
    return "full" if r is None or pd.isna(r) else f"TT r={int(float(r))}"  # type: ignore[arg-type]


def pareto_panel(
    points: pd.DataFrame, dataset: str, colors: dict[str, str], hours: str = "hours"
) -> tuple[Figure | Missing, pd.DataFrame, list[str]]:
    """Each pair of :data:`PARETO_PAIRS` that has data, for configs aggregated over seeds: the non-dominated
    configurations joined by a line, filled, the dominated ones open; colour per method, marker per rank.

    ``points``: one row per configuration with ``<metric>_mean`` columns (``train_hours_mean`` for the time
    panels), ``method``, ``rank`` and ``hover``. ``hours``: the unit of the time axis ("GPU-hours").
    Returns the figure, a long frame (config, x metric, x, y metric, y, on_front) for CSV export, and the
    labels of the panels left out for want of data.
    """
    if points.empty or points["clean_acc_mean"].notna().sum() == 0:
        return Missing("needs ok trials with clean accuracy"), pd.DataFrame(), []
    pairs, left_out = [], []
    for options, ycol in PARETO_PAIRS:
        col = next((c for c in options if f"{c}_mean" in points and points[f"{c}_mean"].notna().any()), None)
        has = col is not None and (points[f"{col}_mean"].notna() & points[f"{ycol}_mean"].notna()).any()
        if has:
            pairs.append((col, ycol))
        else:
            missing = options[0] if col is None else ycol
            text = _metric_label(missing, hours)
            if text not in left_out:
                left_out.append(text)
    if not pairs:  # clean accuracy alone: nothing to trade it against
        return Missing("needs a second metric beside clean accuracy (training time, certified accuracy, ...)"), pd.DataFrame(), left_out
    cols = 3
    nrows = math.ceil(len(pairs) / cols)
    titles = [f"{_metric_label(y, hours)} vs {_metric_label(x, hours)}" for x, y in pairs]
    specs = [[{} if r * cols + c < len(pairs) else None for c in range(cols)] for r in range(nrows)]  # no empty cell
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles, specs=specs, horizontal_spacing=0.07,
                        vertical_spacing=0.3 / nrows)  # fmt: skip
    symbols = rank_symbols(points["rank"])
    rank_of = points["rank"].map(_rank_label)
    exported = []
    for k, (col, ycol) in enumerate(pairs):
        row, colno = k // cols + 1, k % cols + 1
        ok = points[f"{col}_mean"].notna() & points[f"{ycol}_mean"].notna()
        sub, ranks = points[ok], rank_of[ok]
        x, y = sub[f"{col}_mean"].to_numpy(), sub[f"{ycol}_mean"].to_numpy()
        front = pareto_mask(np.c_[x, y], [_sense_max(col), True])
        exported.append(pd.DataFrame({"config": sub["hover"].to_numpy(), "method": sub["method"].to_numpy(),
                                      "x_metric": col, "x": x, "y_metric": ycol, "y": y, "on_front": front}))  # fmt: skip
        xl, yl = _metric_label(col, hours), _metric_label(ycol, hours)
        fr = sub[front].sort_values(f"{col}_mean")
        fig.add_trace(
            go.Scatter(x=fr[f"{col}_mean"], y=fr[f"{ycol}_mean"], mode="lines", line=dict(color="black", width=1),
                       hoverinfo="skip", showlegend=False),
            row=row, col=colno,
        )  # fmt: skip
        trace = _scatter(len(sub))
        for (method, rank, on), g in sub.assign(_rank=ranks, _front=front).groupby(["method", "_rank", "_front"], sort=True):
            symbol = symbols[rank] + ("" if on else "-open")
            state = "on the front" if on else "dominated"
            fig.add_trace(
                trace(x=g[f"{col}_mean"], y=g[f"{ycol}_mean"], mode="markers", name=str(method), legendgroup=str(method),
                      showlegend=False, text=g["hover"],
                      marker=dict(color=colors.get(str(method)), symbol=symbol, size=10 if on else 8,
                                  line=dict(color="black" if on else colors.get(str(method)), width=1 if on else 1.5)),
                      hovertemplate=f"%{{text}}<br>{state}<br>{xl} %{{x:.4g}}<br>{yl} %{{y:.4g}}<extra></extra>"),
                row=row, col=colno,
            )  # fmt: skip
        if col in ("speedup", "compression", "train_hours") and np.nanmax(x) >= 10 * np.nanmin(x) > 0:
            fig.update_xaxes(type="log", row=row, col=colno)  # log only where the values span a decade
        fig.update_xaxes(title_text=xl, row=row, col=colno)
        fig.update_yaxes(title_text=yl, row=row, col=colno)
    # the legend: one entry per method (colour) and per rank (marker), and what open markers mean
    for method in sorted(points["method"].astype(str).unique()):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=method, legendgroup=method,
                                 marker=dict(color=colors.get(method), symbol="circle", size=10)))  # fmt: skip
    for rank, symbol in symbols.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=rank, legendgroup=f"rank {rank}",
                                 marker=dict(color="#444444", symbol=symbol, size=9)))  # fmt: skip
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="open: dominated", legendgroup="dominated",
                             marker=dict(color="#444444", symbol="circle-open", size=9)))  # fmt: skip
    title = f"Pareto fronts on {dataset}: the best trade-offs joined (filled), dominated configurations open (mean over seeds)"
    long = pd.concat(exported, ignore_index=True).assign(dataset=dataset) if exported else pd.DataFrame()
    return Figure(f"pareto_{dataset}", title, _layout(fig, title, height=360 * nrows + 80)), long, left_out


def layer_norms(layers: pd.DataFrame, trials: pd.DataFrame, title: str, colors: dict[str, str], name: str) -> Figure | Missing:
    """Mean spectral norm per layer (error bars: min to max over trials) for each method · rank."""
    if layers.empty:
        return Missing("needs per-layer spectral norms (layers table) for these trials")
    info = trials[["trial_id", "method", "rank", "clip_to", *(["label"] if "label" in trials else [])]]
    lay = layers.drop(columns=["rank"], errors="ignore").merge(info, on="trial_id", how="inner")
    lay = lay[_num(lay["spectral_norm"]).notna()]
    if lay.empty:
        return Missing("needs per-layer spectral norms (layers table) for these trials")
    lay = lay.assign(spectral_norm=_num(lay["spectral_norm"]))
    # network order: as the trial with the most layers wrote them (one model's order), then any other layer
    fullest = lay.groupby("trial_id")["layer"].size().idxmax()
    order = list(dict.fromkeys([*lay.loc[lay["trial_id"] == fullest, "layer"], *lay["layer"]]))
    varies = lay["clip_to"].nunique() > 1
    if "label" not in lay:  # trials from prepare_trials carry a label per configuration (every option that varies)
        lay = lay.assign(
            label=[config_label(m, r) + (f" · c={float(c):g}" if varies and m != "none" else "")
                   for m, r, c in zip(lay["method"], lay["rank"], lay["clip_to"])]
        )  # fmt: skip
    agg = lay.groupby(["label", "method", "layer"]).spectral_norm.agg(["mean", "min", "max", "size"]).reset_index()
    pos = {l: i for i, l in enumerate(order)}
    fig = go.Figure()
    for (label, method), g in agg.groupby(["label", "method"]):
        g = g.sort_values("layer", key=lambda s: s.map(pos))
        fig.add_trace(
            go.Scatter(
                x=g["layer"], y=g["mean"], mode="lines+markers", name=label, legendgroup=str(method),
                line=dict(color=colors.get(str(method)), dash=None if "full" in label else "dot"),
                error_y=dict(type="data", symmetric=False, array=g["max"] - g["mean"], arrayminus=g["mean"] - g["min"]),
                customdata=g["size"], hovertemplate=f"{label}<br>%{{x}}<br>σ_max %{{y:.4g}} (mean of %{{customdata}})<extra></extra>",
            )
        )  # fmt: skip
    for c in sorted(_num(lay.loc[lay["method"] != "none", "clip_to"]).dropna().unique()):
        fig.add_hline(y=c, line=dict(color="grey", dash="dash", width=1), annotation_text=f"target {c:g}")
    # layers whose mean norm ends above their trial's target (a method that steps towards one) are ringed red
    target = lay.groupby(["label", "layer"])["clip_to"].first()
    steps = lay.groupby(["label", "layer"])["method"].first().map(lambda m: method_uses(m, "clip_to"))
    above = agg.set_index(["label", "layer"])
    above = above[steps.reindex(above.index).fillna(False).astype(bool)
                  & (above["mean"] > _num(target.reindex(above.index)) * (1 + TARGET_TOL))].reset_index()  # fmt: skip
    if len(above):
        fig.add_trace(
            go.Scatter(x=above["layer"], y=above["mean"], mode="markers", name=f"above its target (> {TARGET_TOL:.0%})",
                       marker=dict(symbol="circle-open", size=16, color="#c0392b", line=dict(width=2)), text=above["label"],
                       hovertemplate="%{text}<br>%{x}: σ_max %{y:.4g}, above its target<extra></extra>")
        )  # fmt: skip
        title += f"; {len(above)} layer(s) above their target, ringed red"
    fig.update_xaxes(title_text="layer (model order)", categoryorder="array", categoryarray=order)
    fig.update_yaxes(title_text="spectral norm after training", rangemode="tozero")
    return Figure(name, title, _layout(fig, title, height=460))


def emp_lip_histograms(
    trials: pd.DataFrame, title: str, colors: dict[str, str], name: str, bins: int = 40, paper: pd.DataFrame | None = None
) -> Figure | Missing:
    """Histogram (fraction of test images) of the empirical Lipschitz ratios pooled per method · rank, in the
    normalised-input units of Senderovich et al. 2022 (``emp_lip_hist_normalized``) where the trials have them,
    else in pixel units (``emp_lip_hist``, trials written before both were kept). On the normalised one, the
    maxima a paper reports for this dataset and architecture (``paper`` rows with ``emp_lip_max_normalized``:
    Senderovich et al. 2022 Tab. 3 "Lip.") as vertical lines, one per row, named on hover."""
    has = lambda col: trials[col].map(lambda v: v is not None and len(v) > 0) if col in trials else pd.Series(False, index=trials.index)  # noqa: E731
    column = "emp_lip_hist_normalized" if has("emp_lip_hist_normalized").any() else "emp_lip_hist"
    ok = trials[has(column)]
    if ok.empty:
        return Missing("needs ok trials with empirical Lipschitz ratios (emp_lip_hist)")
    pooled = {}
    for (label, method), g in ok.groupby(["label", "method"]):
        vals = np.concatenate([np.asarray(v, dtype=np.float64) for v in g[column]])
        pooled[(label, method)] = vals[np.isfinite(vals)]
    allv = np.concatenate(list(pooled.values()))
    if allv.size == 0:
        return Missing("the empirical Lipschitz ratios are all missing or infinite")
    hi = float(np.quantile(allv, 0.999)) or 1.0
    edges = np.linspace(0.0, hi * 1.02, bins + 1)
    fig = go.Figure()
    for (label, method), vals in pooled.items():
        counts, _ = np.histogram(np.clip(vals, 0, edges[-1]), bins=edges)
        frac = counts / max(vals.size, 1)
        fig.add_trace(
            go.Scatter(
                x=edges, y=np.r_[frac, frac[-1]], mode="lines", line_shape="hv", name=f"{label} (max {vals.max():.3g})",
                legendgroup=str(method), line=dict(color=colors.get(str(method)), dash=None if "full" in label else "dot"),
                hovertemplate=f"{label}<br>ratio ≥ %{{x:.3g}}<br>%{{y:.1%}} of images<extra></extra>",
            )
        )  # fmt: skip
    normalized = column == "emp_lip_hist_normalized"
    has_paper = paper is not None and normalized and "emp_lip_max_normalized" in paper
    reported = paper[pd.to_numeric(paper["emp_lip_max_normalized"], errors="coerce").notna()] if has_paper else None
    if reported is not None and not reported.empty:
        top = max(float(np.max(t.y)) for t in fig.data)
        xs, ys, text = [], [], []
        for row in reported.itertuples(index=False):
            v = float(row.emp_lip_max_normalized)
            lam = "" if pd.isna(getattr(row, "lam", np.nan)) else f" · λ={row.lam:g}"
            label = f"{row.source_label}: {config_label(row.method, row.rank)}{lam}, max {v:g}"
            xs += [v, v, None]
            ys += [0.0, top, None]
            text += [label, label, None]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name="maximum reported by the paper", text=text,
                       line=dict(color="#888888", dash="dash", width=1), hovertemplate="%{text}<extra></extra>")
        )  # fmt: skip
    units = "inputs after Normalize, the paper's units" if normalized else "[0, 1] pixel units"
    fig.update_xaxes(title_text=f"‖f(x) − f(x′)‖ / ‖x − x′‖, {units} (last bin: everything above)")
    fig.update_yaxes(title_text="fraction of test images", tickformat=".0%")
    return Figure(name, title, _layout(fig, title))


def training_curves(epochs: pd.DataFrame, trials: pd.DataFrame, title: str, colors: dict[str, str], name: str) -> Figure | Missing:
    """Mean test accuracy and train loss per epoch for each method · rank (over seeds and other settings)."""
    if epochs.empty:
        return Missing("needs per-epoch history (epochs table) for these trials")
    ep = epochs.merge(trials[["trial_id", "label", "method"]], on="trial_id", how="inner")
    if ep.empty:
        return Missing("needs per-epoch history (epochs table) for these trials")
    panels = [c for c in ("test_acc", "train_loss", "orth_loss") if _num(ep[c]).fillna(0).ne(0).any()]
    if not panels:
        return Missing("the epochs table has no test accuracy or loss values for these trials")
    labels = {"test_acc": "test accuracy (%)", "train_loss": "train loss", "orth_loss": "orthogonality loss"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[labels[p] for p in panels])
    for c in panels:
        ep[c] = _num(ep[c])
    agg = ep.groupby(["label", "method", "epoch"])[panels].mean().reset_index()
    for j, p in enumerate(panels, start=1):
        for (label, method), g in agg.groupby(["label", "method"]):
            fig.add_trace(
                go.Scatter(
                    x=g["epoch"], y=g[p], mode="lines+markers", name=label, legendgroup=label, showlegend=j == 1,
                    line=dict(color=colors.get(str(method)), dash=None if "full" in label else "dot"),
                    hovertemplate=f"{label}<br>epoch %{{x}}<br>{labels[p]} %{{y:.4g}}<extra></extra>",
                ),
                row=1, col=j,
            )  # fmt: skip
    last = int(_num(ep["epoch"]).max())
    fig.update_xaxes(title_text="epoch", tickformat="d", dtick=1 if last <= 20 else None)  # whole epochs only
    return Figure(name, title, _layout(fig, title))
