"""Summary tables: trials aggregated over seeds per configuration, with the papers' rows beside them."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.options import method_uses
from analysis.paper import paper_rows_for
from svconv.config import TrialConfig
from svconv.results import DamagedFile
from svconv.results.schema import CONFIG_FIELDS


@dataclass(frozen=True)
class Metric:
    column: str  # column of the prepared trials frame
    label: str
    sense: str  # "max" | "min": which way is better
    unit: str = "%"  # "%" (already percent), "share" (fraction shown as percent), "x" (ratio), "" (a number)


METRICS: tuple[Metric, ...] = (
    Metric("clean_acc", "Accuracy (%)", "max"),
    Metric("autoattack_025", "AutoAttack ε=0.25 px (%)", "max"),  # the papers' AA (ε 0.5 after a std-0.5 Normalize)
    Metric("autoattack_36", "AutoAttack ε=36/255 px (%)", "max"),
    Metric("autoattack_05", "AutoAttack ε=0.5 px (%)", "max"),
    Metric("cra_36", "Certified ε=36/255 (%)", "max"),
    Metric("cra_72", "Certified ε=72/255 (%)", "max"),
    Metric("cra_108", "Certified ε=108/255 (%)", "max"),
    Metric("cra_255", "Certified ε=1 (%)", "max"),
    Metric("ece", "ECE (%)", "min"),
    Metric("corruption_acc", "Corruption acc. (%)", "max"),
    Metric("control_share", "Control time share (%)", "min", "share"),
    Metric("compression", "Compression (×)", "max", "x"),
    Metric("speedup", "Clip speedup (×)", "max", "x"),
    Metric("emp_lip_max_normalized", "Max. empirical Lipschitz ratio (normalised inputs)", "min", ""),  # the papers' "Lip."
    Metric("emp_lip_max", "Max. empirical Lipschitz ratio (pixels)", "min", ""),
)
METRIC_BY_COLUMN = {m.column: m for m in METRICS}

#: config columns of ``trials`` (schema order) that identify a configuration apart from the seed
CONFIG_COLUMNS: tuple[str, ...] = tuple(name for name, _ in CONFIG_FIELDS if name != "seed")
#: every option that identifies a configuration apart from the seed: the config columns, then the other
#: ``TrialConfig`` fields of the trial id (``data_root`` says where the data is, not what was run), which
#: :func:`prepare_trials` reads from each row's ``config_json``
OPTION_COLUMNS: tuple[str, ...] = CONFIG_COLUMNS + tuple(
    f.name for f in dataclasses.fields(TrialConfig) if f.metadata.get("id", True) and f.name not in CONFIG_COLUMNS and f.name != "seed"
)
#: always shown in a summary table (the others only when they vary)
MAIN_KEY = ("method", "rank", "clip_to", "lam")


def prepare_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``trials`` with every option of :data:`OPTION_COLUMNS` as a column (from ``config_json``
    where the row has no column for it) and derived columns: ``control_share`` filled from the timings where
    missing, ``speedup`` (mean control time of the full-rank counterpart ÷ this trial's, over ok trials
    with the same config apart from rank, λ and seed) and ``label`` ("clip · TT r=16", then the options
    that vary within its dataset and architecture, and "did not learn" for a trial that did not).
    """
    df = _with_options(trials)
    for col in ("control_time_s", "train_time_s", "control_share", "rank", "clip_to", "lam"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    share = df["control_time_s"] / df["train_time_s"].where(df["train_time_s"] > 0)
    df["control_share"] = df["control_share"].fillna(share)
    df["speedup"] = _speedup(df)
    df["label"] = _labels(df)
    return df


def _with_options(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with a column per option of :data:`OPTION_COLUMNS`: a column's nulls (files written before it
    existed) and the options that are not columns are filled from the row's ``config_json``."""
    df = trials.copy()
    parsed = [_parse_config(text) for text in df.get("config_json", pd.Series(None, index=df.index))]
    for name in OPTION_COLUMNS:
        from_json = pd.Series([_hashable(c.get(name)) for c in parsed], index=df.index, dtype=object)
        if name in df.columns:
            df[name] = df[name].astype(object).where(df[name].notna(), from_json).infer_objects()
        else:
            df[name] = from_json.infer_objects()
    return df


def _parse_config(text: object) -> dict:
    try:
        out = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _hashable(v: object) -> object:
    """A JSON value as a group key: lists and objects as their JSON text, null as NaN."""
    if v is None:
        return np.nan
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def option_columns(frame: pd.DataFrame) -> list[str]:
    """The options of :data:`OPTION_COLUMNS` that are columns of ``frame``."""
    return [c for c in OPTION_COLUMNS if c in frame.columns]


def _labels(df: pd.DataFrame) -> list[str]:
    """Per trial: its method and rank, each option that varies within its dataset and architecture, and
    "did not learn" (``learned`` false), so that figures grouping by label never pool two configurations."""
    labels = pd.Series([config_label(m, r) for m, r in zip(df["method"], df["rank"])], index=df.index, dtype=object)
    shown = ("dataset", "arch", "method", "rank")
    for _, g in df.groupby(["dataset", "arch"], dropna=False, sort=False):
        for c in varying_key(g, always=(), exclude=shown):
            if c == "preprocessing":
                continue
            labels[g.index] = labels[g.index] + [f" · {c}={_fmt_plain(v)}" for v in g[c]]
    if "learned" in df:
        labels = labels + np.where(df["learned"].eq(False), " · did not learn", "")
    return list(labels)


def _speedup(df: pd.DataFrame) -> pd.Series:
    base_key = [c for c in option_columns(df) if c not in ("rank", "lam")]
    ok = df[(df["status"] == "ok") & df["rank"].isna() & (df["control_time_s"] > 0) & (df["method"] != "none")]
    if ok.empty:
        return pd.Series(np.nan, index=df.index)
    base = ok.groupby(base_key, dropna=False)["control_time_s"].mean().rename("_base").reset_index()
    merged = df[base_key].merge(base, on=base_key, how="left")
    # method none controls nothing: its "control time" is bookkeeping noise, not a speed
    t = df["control_time_s"].where((df["control_time_s"] > 0) & (df["method"] != "none"))
    return pd.Series(merged["_base"].to_numpy() / t.to_numpy(), index=df.index)


def config_label(method: object, rank: object) -> str:
    """Short name of a method at a rank: "clip · full" or "clip · TT r=16"."""
    r = _num(rank)
    return f"{method} · full" if r is None else f"{method} · TT r={int(r)}"


def _num(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def varying_key(frame: pd.DataFrame, always: tuple[str, ...] = MAIN_KEY, exclude: tuple[str, ...] = ()) -> list[str]:
    """The options that identify a configuration in ``frame``: ``always`` plus every other option
    (:func:`option_columns`: all of the config but the seed, on a frame from :func:`prepare_trials`) that
    takes more than one value there, so that runs with different epochs, learning rates or FastClip's
    ``clip_k`` are never pooled. The input ``preprocessing`` (not a config option: the
    architecture's paper's, ``svconv.models.preprocessing``) is part of the key wherever it is known, so that
    the tables show it beside the papers' own (``analysis.conventions``)."""
    key = [c for c in always if c not in exclude]
    for c in option_columns(frame):
        if c not in key and c not in exclude and frame[c].nunique(dropna=False) > 1:
            key.append(c)
    if "preprocessing" in frame and "preprocessing" not in exclude and frame["preprocessing"].notna().any():
        key.append("preprocessing")
    return key


def aggregate(frame: pd.DataFrame, key: list[str], metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean and std over seeds per ``key``: columns ``key``, ``n``, ``<m>_mean``, ``<m>_std``, ``seeds``,
    ``n_unlearned`` (trials whose ``learned`` is false) and ``<m>_nonfinite``: how many ±inf values of
    ``m`` were left out of its mean and std (a diverged certificate, say), which the tables flag. A null
    (NaN) is a metric not measured and is left out without a flag."""
    metrics = metrics or tuple(m.column for m in METRICS)
    stats = [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    if frame.empty:
        return pd.DataFrame(columns=[*key, "n", *stats, "seeds", "n_unlearned", *[f"{m}_nonfinite" for m in metrics]])
    values = frame[list(metrics)].apply(pd.to_numeric, errors="coerce").astype("float64")
    infinite = np.isinf(values)
    work = pd.concat([frame[key], values.where(~infinite), infinite.add_suffix("_nonfinite")], axis=1)
    work["seed"] = frame["seed"]
    work["n_unlearned"] = frame["learned"].eq(False) if "learned" in frame else False
    g = work.groupby(key, dropna=False, sort=True)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out.insert(0, "n", g.size())
    out["seeds"] = g["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s.dropna().unique())))
    out["n_unlearned"] = g["n_unlearned"].sum().astype(int)
    for m in metrics:
        out[f"{m}_nonfinite"] = g[f"{m}_nonfinite"].sum().astype(int)
    return out.reset_index()


@dataclass
class SummaryTable:
    """One dataset × architecture: our aggregated configs (numeric) and the matching paper rows."""

    dataset: str
    arch: str
    key: list[str]
    ours: pd.DataFrame  # aggregate(...) plus n_not_ok
    paper: pd.DataFrame
    metrics: list[Metric] = field(default_factory=list)  # metrics with data in ours or paper
    empty_metrics: list[Metric] = field(default_factory=list)

    def numeric(self) -> pd.DataFrame:
        """Ours and the paper's in one numeric frame (for CSV), ``source`` says which is which."""
        ours = self.ours.assign(source="this run")
        paper = self.paper.assign(source=self.paper.get("source_label", "paper"))
        paper = paper.rename(columns={m.column: f"{m.column}_mean" for m in METRICS})
        cols = ["source", *self.key, "n", "n_not_ok", "seeds"] + [
            f"{m.column}_{s}" for m in self.metrics for s in ("mean", "std")
        ]
        both = pd.concat([ours, paper], ignore_index=True)
        return both.reindex(columns=cols).assign(dataset=self.dataset, arch=self.arch)

    def display(self) -> tuple[pd.DataFrame, list[str]]:
        """Rows of strings ("95.21 ± 0.12") for the HTML table, and a CSS class per row ("paper" rows)."""
        ours = self.ours.assign(_paper=False, _src="")
        paper = self.paper.assign(_paper=True, _src=self.paper.get("source_label", "paper"))
        for m in METRICS:
            if m.column in paper.columns:
                paper[f"{m.column}_mean"] = pd.to_numeric(paper[m.column], errors="coerce")
        both = pd.concat([ours, paper], ignore_index=True)
        # paper rows sort beside ours: same method family (soc-tt beside soc), rank, clip_to and λ (the λ grid
        # of Senderovich et al. 2022 Tab. 3 beside our λ sweep); a value the paper leaves out sorts as ours
        # where ours has one value there (division's target, the λ of a TT rank)
        both["_m"] = both["method"].astype(str).str.replace("-tt", "", regex=False)
        both["_r"] = pd.to_numeric(both["rank"], errors="coerce").fillna(-1)
        for col, key in (("clip_to", "_c"), ("lam", "_l")):
            both[key] = _fill_from_ours(both, col)
        both = both.sort_values(["_m", "_r", "_c", "_l", "_paper"], kind="stable")
        rows = pd.DataFrame(index=both.index)
        rows["source"] = [f"reported by the paper ({src})" if p else "this run" for p, src in zip(both["_paper"], both["_src"])]
        rows["method"] = both["method"].astype(str)
        rows["rank"] = [("full" if _num(r) is None else str(int(float(r)))) for r in both["rank"]]
        for c in self.key:
            if c in ("method", "rank"):
                continue
            # an option the row's method does not read is left blank, not shown at its default
            rows[c] = [_fmt_plain(v) if method_uses(m, c, r) else "" for v, m, r in zip(both[c], both["method"], both["rank"])] \
                if c in both else ""  # fmt: skip
        rows["n"] = [
            "" if is_paper else f"{int(n)}" + (f" (+{int(bad)} not ok)" if _num(bad) else "")
            + (f" ({int(dull)} did not learn)" if _num(dull) else "")
            for n, bad, dull, is_paper in zip(both["n"], both["n_not_ok"], both.get("n_unlearned", np.nan), both["_paper"])
        ]
        for m in self.metrics:
            nonfinite = both.get(f"{m.column}_nonfinite", pd.Series(np.nan, index=both.index))
            rows[m.label] = [
                _fmt_mean_std(mu, sd, m.unit) + (f" (⚠ {int(k)} ±inf left out)" if _num(k) else "")
                for mu, sd, k in zip(both[f"{m.column}_mean"], both.get(f"{m.column}_std", np.nan), nonfinite)
            ]
        classes = ["paper" if p else ("unlearned" if _num(dull) else "") for p, dull in zip(both["_paper"], both.get("n_unlearned", np.nan))]
        return rows.reset_index(drop=True), classes


def _fill_from_ours(both: pd.DataFrame, col: str) -> pd.Series:
    """``col`` as a sort key: numeric, a paper row's missing value taken from our rows of the same method
    family and rank when they all share one value, else -1 (first)."""
    values = pd.to_numeric(both[col], errors="coerce") if col in both else pd.Series(np.nan, index=both.index)
    ours = both.assign(_v=values)[~both["_paper"].astype(bool) & values.notna()]
    single = ours.groupby(["_m", "_r"])["_v"].agg(lambda v: v.iloc[0] if v.nunique() == 1 else np.nan)
    fill = pd.Series([single.get((m, r), np.nan) for m, r in zip(both["_m"], both["_r"])], index=both.index)
    return values.fillna(fill.where(both["_paper"].astype(bool))).fillna(-1)


def summary_tables(trials: pd.DataFrame, paper: pd.DataFrame) -> list[SummaryTable]:
    """One :class:`SummaryTable` per (dataset, arch) that has trials; ``trials`` from :func:`prepare_trials`."""
    out = []
    for (dataset, arch), frame in trials.groupby(["dataset", "arch"], sort=True, dropna=False):
        key = varying_key(frame, exclude=("dataset", "arch"))
        ok = frame[frame["status"] == "ok"]
        ours = aggregate(ok, key)
        bad = frame[frame["status"] != "ok"].groupby(key, dropna=False).size().rename("n_not_ok").reset_index()
        ours = ours.merge(bad, on=key, how="outer") if not bad.empty else ours.assign(n_not_ok=0)
        ours["n"] = ours["n"].fillna(0)
        ours["n_not_ok"] = ours["n_not_ok"].fillna(0)
        prow = paper_rows_for(paper, dataset, arch)
        metrics, empty = [], []
        for m in METRICS:
            has = ours[f"{m.column}_mean"].notna().any() or (m.column in prow and prow[m.column].notna().any())
            (metrics if has else empty).append(m)
        out.append(SummaryTable(str(dataset), str(arch), key, ours, prow, metrics, empty))
    return out


def _fmt_plain(v: object) -> str:
    f = _num(v)
    if f is None:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return f"{f:g}"


def _fmt_mean_std(mu: object, sd: object, unit: str) -> str:
    m = _num(mu)
    if m is None:
        return "–"
    s = _num(sd)
    if unit == "share":
        m, s = 100 * m, (None if s is None else 100 * s)
    digits = 2
    text = f"{m:.{digits}f}"
    if s is not None:
        text += f" ±\u00a0{s:.{digits}f}"  # a wrapped cell breaks before the ±, never after it
    return text + ("×" if unit == "x" else "")


def damaged_files_table(damaged: Sequence[DamagedFile]) -> pd.DataFrame:
    """One row per unreadable results file: table, file id (the trial id of trial tables), path, reason."""
    rows = [(d.table, d.file_id, str(d.path), d.reason) for d in damaged]
    return pd.DataFrame(rows, columns=["table", "file_id", "path", "reason"])


def failed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials whose status is not ok, newest first: id, sweep, status, config, epochs done, error."""
    bad = trials[trials["status"] != "ok"].copy()
    cols = ["trial_id", "sweep", "status", "dataset", "arch", "method", "rank", "clip_to", "lam", "seed",
            "epochs_done", "epochs", "end_time", "error"]  # fmt: skip
    bad = bad.sort_values("end_time", ascending=False, na_position="last")
    return bad.reindex(columns=cols)


def method_ranking(points: pd.DataFrame, hours: str = "hours") -> pd.DataFrame:
    """One row per method, best first: its configuration of best clean accuracy and of best certified accuracy
    (ε = 36/255), each with the other accuracy and its training time; ranked by best certified accuracy, then
    by best clean accuracy. ``points``: configurations aggregated over seeds (``clean_acc_mean``,
    ``cra_36_mean``, ``train_hours_mean``, ``method``, ``hover``). Strings, for display."""
    rows = []
    for method, g in points.groupby("method", sort=True):
        g = g[g["clean_acc_mean"].notna()]
        if g.empty:
            continue
        clean = g.loc[g["clean_acc_mean"].idxmax()]
        cert = g.loc[g["cra_36_mean"].idxmax()] if g["cra_36_mean"].notna().any() else None
        rows.append({
            "_cert": -1.0 if cert is None else float(cert["cra_36_mean"]), "_clean": float(clean["clean_acc_mean"]),
            "method": str(method), "configs": str(len(g)),
            "best clean acc. (%)": f"{clean['clean_acc_mean']:.2f}",
            "its certified (%)": _fmt_plain_2(clean.get("cra_36_mean")),
            f"its time ({hours})": _fmt_hours(clean.get("train_hours_mean")),
            "best certified (%)": "" if cert is None else f"{cert['cra_36_mean']:.2f}",
            "its clean acc. (%)": "" if cert is None else f"{cert['clean_acc_mean']:.2f}",
            f"its time ({hours}) ": "" if cert is None else _fmt_hours(cert.get("train_hours_mean")),
            "configurations (best clean; best certified)": str(clean["hover"]) + ("" if cert is None or cert.name == clean.name
                                                                                 else "; " + str(cert["hover"])),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["_cert", "_clean"], ascending=False, kind="stable").drop(columns=["_cert", "_clean"])
    frame.insert(0, "#", [str(i) for i in range(1, len(frame) + 1)])
    return frame.reset_index(drop=True)


def _fmt_plain_2(v: object) -> str:
    f = _num(v)
    return "" if f is None else f"{f:.2f}"


def _fmt_hours(v: object) -> str:
    f = _num(v)
    return "" if f is None else f"{f:.3g}"
