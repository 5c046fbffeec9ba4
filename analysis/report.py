"""Build the HTML comparison report of a results folder (``svconv report``).

Every section is drawn from whatever data exists; a section without its data says what it needs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from analysis import figures as F
from analysis import html as H
from analysis.load import Results, load_results
from analysis.conventions import convention_notes
from analysis.paper import load_paper_results, paper_rows_for
from analysis.tables import (METRICS, aggregate, damaged_files_table, failed_trials, method_ranking, prepare_trials,
                             summary_tables, varying_key)
from analysis.tt_layers import tt_layers_table

FORMATS = ("html", "csv", "png")
FAILED_ROWS_SHOWN = 500


@dataclass
class Report:
    """A rendered report: the page, its figures (for PNG export) and tables (for CSV export)."""

    html: str
    figures: list[F.Figure] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what each absent part needs

    @property
    def n_figures(self) -> int:
        return len(self.figures)


@dataclass
class Written:
    html: Path | None = None
    csv_dir: Path | None = None
    png_dir: Path | None = None
    report: Report | None = None
    warnings: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, results: Results, source: str, title: str, include_unlearned: bool = False) -> None:
        self.r = results
        self.include_unlearned = include_unlearned
        self.source = source
        self.page = H.Page(title)
        self.figures: list[F.Figure] = []
        self.tables: dict[str, pd.DataFrame] = {}
        self.missing: list[str] = []
        self.trials = prepare_trials(results.trials)
        self.ok = self.trials[self.trials["status"] == "ok"]
        self.paper = load_paper_results()
        methods = list(self.trials["method"].dropna()) + list(results.bench["method"].dropna())
        self.colors = F.colors_for(methods)

    # -- helpers
    def _missing(self, section: H.Section, what: str, needs: str) -> None:
        self.missing.append(f"{what}: {needs}")
        section.add(H.missing(f"{what}: {needs}."))

    def _figure(self, section: H.Section, result: F.Figure | F.Missing, what: str, caption: str = "") -> None:
        if isinstance(result, F.Missing):
            self._missing(section, what, result.reason)
            return
        self.figures.append(result)
        section.add(self.page.figure(result.fig, caption))

    def _need_ok(self) -> str:
        if self.trials.empty:
            return "need trials with status ok (there are no trials)"
        counts = self.trials["status"].value_counts().sort_index()
        return f"need trials with status ok (none of {len(self.trials)}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"

    def _combos(self) -> list[tuple[str, str, pd.DataFrame]]:
        return [(str(d), str(a), g) for (d, a), g in self.ok.groupby(["dataset", "arch"], sort=True)]

    # -- sections
    def overview(self) -> None:
        s = self.page.section("Overview")
        t, b = self.r.trials, self.r.bench
        counts = t["status"].fillna("unknown").value_counts()
        status = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        sweeps = ", ".join(sorted(t["sweep"].dropna().astype(str).unique())) or "–"
        suites = ", ".join(sorted(b["suite"].dropna().astype(str).unique())) or "–"
        devices = sorted(set(t["device_name"].dropna().astype(str)) | set(b["device_name"].dropna().astype(str)))
        both = pd.concat([t, b], ignore_index=True) if len(t) or len(b) else t

        def vals(col: str) -> str:
            return ", ".join(sorted(both[col].dropna().astype(str).unique())) or "–" if col in both else "–"

        start = pd.to_datetime(both["start_time"], utc=True).min() if len(both) else None
        end = pd.to_datetime(both["end_time"], utc=True).max() if len(both) else None
        span = f"{_date(start)} to {_date(end)}" if start is not None and pd.notna(start) else "–"
        s.add(
            H.facts(
                [
                    ("results folder", self.source),
                    ("report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
                    ("sweeps", sweeps),
                    ("trials", f"{len(t)} ({status})"),
                    ("trials that did not learn", _unlearned_fact(self.trials)),
                    ("epoch rows / layer rows", f"{len(self.r.epochs)} / {len(self.r.layers)}"),
                    ("bench suites", f"{suites} ({len(b)} rows)"),
                    ("hardware", ", ".join(devices) or "–"),
                    ("hosts", vals("host")),
                    ("torch / ray / svconv", f"{vals('torch_version')} / {vals('ray_version')} / {vals('svconv_version')}"),
                    ("git commits", vals("git_commit")),
                    ("runs between", span),
                ]
            )
        )
        # the sections below list what they miss; here only say where the rows come from
        if t.empty:
            s.add(H.missing(f"No trials in {self.source}/trials: they come from `svconv sweep run` or `svconv train`."))
        if b.empty:
            s.add(H.missing(f"No microbenchmark rows in {self.source}/bench: they come from `svconv bench`."))

    def summaries(self, paper: pd.DataFrame) -> None:
        s = self.page.section("Summary tables")
        if self.trials.empty:
            self._missing(s, "Summary tables", f"need trials in {self.source}/trials")
            return
        s.add(H.note("Mean ± standard deviation over seeds of the ok trials of each configuration; accuracies, ECE "
                     "and control time share in percent. Speedup: control time of the full-rank counterpart ÷ this "
                     "configuration's. Rows in italics on a yellow ground are reported by the paper, not measured here."))  # fmt: skip
        matched = set()
        for st in summary_tables(self.trials, paper):
            sub = self.page.subsection(s, f"{st.dataset} · {st.arch}")
            rows, classes = st.display()
            for part in _split_columns(rows, [m.label for m in st.metrics]):
                sub.add(H.table(part, classes, text_columns=("source", "method")))
            if st.empty_metrics:
                sub.add(H.note("No data here for: " + ", ".join(m.label for m in st.empty_metrics) + "."))
            for note in convention_notes(st.ours.get("preprocessing", pd.Series(dtype=str)), st.paper):
                sub.add(H.note(note))
            if st.paper.empty:
                sub.add(H.note(f"The reference papers report no results for {st.dataset} · {st.arch}."))
            else:
                matched |= set(zip(st.paper["dataset"], st.paper["arch"]))
            self.tables[f"summary_{st.dataset}_{st.arch}"] = st.numeric()
        if not paper.empty:
            others = sorted(set(zip(paper["dataset"], paper["arch"])) - matched)
            if others:
                s.add(H.note("The papers also report " + ", ".join(f"{d} · {a}" for d, a in others)
                             + "; run those to compare with them."))  # fmt: skip

    def tt_layers(self) -> None:
        s = self.page.section("TT layers")
        frame = tt_layers_table(self.trials, self.r.layers)
        if frame.empty:
            self._missing(s, "TT layers", "need trials with a TT rank and their layers rows")
            return
        s.add(H.note("Per TT rank: the conv-like layers made TT, those whose ranks were capped below the requested "
                     "one (to a layer's channel counts or unfolding ranks; the built rank in brackets), and those kept "
                     "dense, where a TT form would not have fewer weights (or the first conv, which to_tt keeps)."))  # fmt: skip
        s.add(H.table(frame, text_columns=("dataset", "arch", "TT layers", "capped (built rank)", "kept dense")))
        self.tables["tt_layers"] = frame

    def bench(self) -> None:
        s = self.page.section("Clipping speed and estimator accuracy")
        if self.r.bench.empty:
            self._missing(s, "Clipping speed", f"needs microbenchmark rows in {self.source}/bench (from `svconv bench`)")
            return
        b = self.r.bench
        builders: Sequence[tuple[str, Callable]] = (
            ("Speedup versus rank", F.speedup_vs_rank),
            ("Time versus channels", F.time_vs_channels),
            ("Time versus input size", F.time_vs_input_size),
            ("Memory versus rank", F.memory_vs_rank),
            ("Estimator gap versus time", F.gap_vs_time),
            ("Time versus achieved norm", F.control_pareto),
            ("1-Lipschitz layer types", F.zoo_steps),
        )
        for title, build in builders:
            fig = build(b, self.colors)
            if build is F.zoo_steps and isinstance(fig, F.Missing):
                continue  # an optional suite: no section for it when it was not run
            self._figure(self.page.subsection(s, title), fig, title)
        sp = F.bench_speedups(b)
        if not sp.empty:
            self.tables["bench_speedups"] = sp
        points = F.control_points(b)
        if not points.empty:
            self.tables["control_pareto"] = points
        bad = b[b["status"].fillna("ok") != "ok"]
        if len(bad):
            sub = self.page.subsection(s, "Skipped and failed measurements")
            cols = ["suite", "scope", "arch", "method", "tt", "rank", "c_in", "c_out", "kernel", "input_size", "device", "dtype", "status", "reason"]
            sub.add(H.table(bad[cols].head(FAILED_ROWS_SHOWN), text_columns=("reason",)))
            self.tables["bench_not_ok"] = bad

    def pareto(self) -> None:
        s = self.page.section("Pareto fronts")
        if self.ok.empty:
            self._missing(s, "Pareto fronts", self._need_ok())
            return
        fronts = []
        ok = self.ok
        unlearned = ok["learned"].eq(False)
        if unlearned.any():
            if self.include_unlearned:
                s.add(H.note(f"{int(unlearned.sum())} ok trial(s) that did not learn are drawn (--include-unlearned)."))
            else:
                ok = ok[~unlearned]
                s.add(H.note(f"{int(unlearned.sum())} ok trial(s) that did not learn are left out of the fronts "
                             "(`svconv report --include-unlearned` draws them)."))  # fmt: skip
        if ok.empty:
            self._missing(s, "Pareto fronts", "need ok trials that learned (every ok trial here did not learn)")
            return
        for dataset, frame in ok.groupby("dataset", sort=True):
            key = varying_key(frame, always=("arch", "method", "rank", "clip_to", "lam"), exclude=("dataset",))
            pts = aggregate(frame, key, tuple(m.column for m in METRICS) + ("train_time_s",))
            pts["train_hours_mean"] = pts["train_time_s_mean"] / 3600.0
            pts["hover"] = [_hover(row, key) for row in pts[key + ["n"]].itertuples(index=False)]
            hours = device_hours(frame["device_name"])
            sub = self.page.subsection(s, str(dataset))
            ranking = method_ranking(pts, hours)
            if not ranking.empty:
                sub.add(H.note("Each method's best configuration by clean accuracy and by certified accuracy "
                               "(ε = 36/255), with its training time per trial; ranked by best certified, then clean accuracy."))  # fmt: skip
                sub.add(H.table(ranking, text_columns=("method", "configurations (best clean; best certified)")))
                self.tables[f"ranking_{dataset}"] = ranking
            fig, long, left_out = F.pareto_panel(pts, str(dataset), self.colors, hours)
            self._figure(sub, fig, f"Pareto fronts on {dataset}")
            if left_out and not isinstance(fig, F.Missing):
                sub.add(H.note("Not drawn, for want of data in these trials: " + ", ".join(left_out) + "."))
            fronts.append(long)
        fronts = [f for f in fronts if not f.empty]
        if fronts:
            self.tables["pareto_points"] = pd.concat(fronts, ignore_index=True)

    def per_combo(self, title: str, what: str, build: Callable[[str, str, pd.DataFrame], F.Figure | F.Missing]) -> None:
        s = self.page.section(title)
        combos = self._combos()
        if not combos:
            self._missing(s, title, self._need_ok())
            return
        for dataset, arch, frame in combos:
            sub = self.page.subsection(s, f"{dataset} · {arch}")
            self._figure(sub, build(dataset, arch, frame), f"{what} ({dataset} · {arch})")

    def failures(self) -> None:
        s = self.page.section("Failed and diverged trials")
        if self.r.damaged:
            self._damaged(self.page.subsection(s, "Damaged and duplicate results files"))
        bad = failed_trials(self.trials)
        if bad.empty:
            s.add(H.note("None: every trial finished with status ok." if len(self.trials) else "No trials."))
            return
        self.tables["failed_trials"] = bad
        shown = bad.head(FAILED_ROWS_SHOWN)
        if len(bad) > len(shown):
            s.add(H.note(f"Showing the {len(shown)} most recent of {len(bad)}; the CSV export has all."))
        shown = shown.astype(object).where(shown.notna(), None)
        shown["error"] = [H.error_cell(e) for e in shown["error"]]
        s.add(H.note("Click an error to unfold its traceback."))
        s.add(H.table(shown, text_columns=("trial_id", "sweep", "status"), html_columns=("error",)))

    def _damaged(self, s: H.Section) -> None:
        frame = damaged_files_table(self.r.damaged)
        self.tables["damaged_files"] = frame
        s.add(H.note(f"{len(frame)} file(s) are left out of every table above: unreadable (zero-byte or truncated; "
                     "`svconv sweep resume` runs their trials again), without a value in a column every row needs, "
                     "or a second copy of a trial's rows (reason: duplicate)."))  # fmt: skip
        s.add(H.table(frame, text_columns=tuple(frame.columns)))

    def build(self, progress: bool = False) -> Report:
        paper = self.paper
        steps: list[tuple[str, Callable[[], None]]] = [
            ("overview", self.overview),
            ("summary tables", lambda: self.summaries(paper)),
            ("tt layers", self.tt_layers),
            ("bench", self.bench),
            ("pareto", self.pareto),
            ("layers", lambda: self.per_combo("Per-layer spectral norms", "Layer spectral norms", self._layers)),
            ("lipschitz", lambda: self.per_combo("Empirical Lipschitz ratios", "Empirical Lipschitz histogram", self._emp_lip)),
            ("curves", lambda: self.per_combo("Training curves", "Training curves", self._curves)),
            ("failures", self.failures),
        ]
        for _, step in tqdm(steps, desc="report", disable=not progress, leave=False):
            step()
        import plotly.offline

        page = self.page.render(plotly.offline.get_plotlyjs())
        return Report(page, self.figures, self.tables, self.missing)

    def _layers(self, dataset: str, arch: str, frame: pd.DataFrame) -> F.Figure | F.Missing:
        lay = self.r.layers[self.r.layers["trial_id"].isin(frame["trial_id"])]
        return F.layer_norms(lay, frame, f"Spectral norm per layer after training ({dataset} · {arch})", self.colors,
                             f"layers_{dataset}_{arch}")  # fmt: skip

    def _emp_lip(self, dataset: str, arch: str, frame: pd.DataFrame) -> F.Figure | F.Missing:
        return F.emp_lip_histograms(frame, f"Empirical Lipschitz ratios of test images ({dataset} · {arch})", self.colors,
                                    f"emp_lip_{dataset}_{arch}", paper=paper_rows_for(self.paper, dataset, arch))  # fmt: skip

    def _curves(self, dataset: str, arch: str, frame: pd.DataFrame) -> F.Figure | F.Missing:
        # diverged and failed trials have history too: show every trial of the combination
        allt = self.trials[(self.trials["dataset"] == dataset) & (self.trials["arch"] == arch)]
        ep = self.r.epochs[self.r.epochs["trial_id"].isin(allt["trial_id"])]
        return F.training_curves(ep, allt, f"Training curves ({dataset} · {arch}), mean over trials", self.colors,
                                 f"curves_{dataset}_{arch}")  # fmt: skip


#: a summary table with more metric columns than this is split in two (accuracies; cost and calibration), so it fits
MAX_METRIC_COLUMNS = 8


def _split_columns(rows: pd.DataFrame, metric_labels: list[str]) -> list[pd.DataFrame]:
    """``rows`` as one table, or as two with the same key columns when it has too many metrics to fit a page."""
    metrics = [c for c in rows.columns if c in metric_labels]
    if len(metrics) <= MAX_METRIC_COLUMNS:
        return [rows]
    keys = [c for c in rows.columns if c not in metric_labels]
    acc = [c for c in metrics if c.startswith(("Accuracy", "AutoAttack", "Certified"))]
    rest = [c for c in metrics if c not in acc]
    return [rows[keys + acc], rows[keys + rest]] if acc and rest else [rows]


def device_hours(device_names: pd.Series) -> str:
    """The unit of training time for trials run on ``device_names`` (``device_name``: "cpu" or a GPU's name)."""
    names = set(device_names.dropna().astype(str))
    if not names:
        return "hours"
    cpu = {n for n in names if n.lower() == "cpu"}
    return "CPU-hours" if cpu == names else "GPU-hours" if not cpu else "hours, CPU and GPU mixed"


def _date(ts: object) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC") if ts is not None and pd.notna(ts) else "–"


def _hover(row: tuple, key: list[str]) -> str:
    parts = []
    for name, v in zip(key + ["n"], row):
        if name == "rank":
            v = "full" if v is None or v != v else int(v)
        elif isinstance(v, float) and v == v:
            v = f"{v:g}"
        parts.append(f"{name}={v}")
    return " ".join(parts)


def _unlearned_fact(trials: pd.DataFrame) -> str:
    """How many ok trials did not learn (``learned`` false), with their labels."""
    bad = trials[(trials["status"] == "ok") & trials["learned"].eq(False)]
    if bad.empty:
        return "none" if trials["learned"].notna().any() else "– (no learned column: results from before it)"
    names = ", ".join(f"{d} · {a} · {lab}" for d, a, lab in zip(bad["dataset"], bad["arch"], bad["label"]))
    return f"{len(bad)}: {names}"


def render_report(
    results: Results, source: str = "results", title: str | None = None, progress: bool = False, include_unlearned: bool = False
) -> Report:
    """Render the report of ``results`` (see :func:`analysis.load_results`) without writing files.

    ``include_unlearned``: draw trials that did not learn (trials column ``learned`` false) on the Pareto fronts.
    """
    return _Builder(results, source, title or f"svconv report: {source}", include_unlearned).build(progress)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"html,csv"`` -> ("html", "csv"); raises ValueError naming the allowed formats."""
    items = [f.strip().lower() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise ValueError(f"--format must be a comma-separated list of {', '.join(FORMATS)}; got {text!r}")
    return tuple(dict.fromkeys(items))


def kaleido_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def build_report(
    results_dir: str | os.PathLike,
    output: str | os.PathLike,
    formats: Sequence[str] = ("html",),
    title: str | None = None,
    progress: bool = False,
    include_unlearned: bool = False,
) -> Written:
    """Read ``results_dir`` and write the report to ``output`` (HTML), plus, per ``formats``, the tables
    as CSV in ``<output stem>_csv/`` and the figures as PNG in ``<output stem>_png/``.

    PNG needs the optional ``kaleido`` package; without it the other formats are written and
    ``Written.warnings`` says why PNG was skipped. ``include_unlearned``: as :func:`render_report`. Raises
    ValueError if ``results_dir`` is not a folder.
    """
    formats = parse_formats(formats)
    src = Path(results_dir)
    if not src.is_dir():
        raise ValueError(f"RESULTS_DIR must be an existing folder of results; {str(src)!r} is not a folder")
    out = Path(output)
    report = render_report(load_results(src), str(src), title, progress, include_unlearned)
    written = Written(report=report)
    out.parent.mkdir(parents=True, exist_ok=True)
    if "html" in formats:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(report.html, encoding="utf-8")
        os.replace(tmp, out)
        written.html = out
    if "csv" in formats:
        written.csv_dir = out.with_name(f"{out.stem}_csv")
        written.csv_dir.mkdir(exist_ok=True)
        for name, frame in report.tables.items():
            frame.drop(columns=["emp_lip_hist"], errors="ignore").to_csv(written.csv_dir / f"{_safe(name)}.csv", index=False)
    if "png" in formats:
        if not kaleido_available():
            written.warnings.append("PNG export needs the optional package kaleido (pip install 'svconv[images]'); "
                                    "no PNG files were written")  # fmt: skip
        else:
            written.png_dir = out.with_name(f"{out.stem}_png")
            written.png_dir.mkdir(exist_ok=True)
            for f in tqdm(report.figures, desc="png", disable=not progress, leave=False):
                f.fig.write_image(written.png_dir / f"{_safe(f.name)}.png", width=1400, height=f.fig.layout.height or 450)
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)

