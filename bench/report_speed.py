"""Time and peak memory to build the HTML report of results folders of growing size, in the layout sweeps write.

    python -m bench.report_speed [--sizes 100,1000,10000] [--repeats 3] [--layout per-trial|chunked]
                                 [--browser] [--workdir DIR]

For each size, a synthetic folder (``analysis.synthetic``: trials with epochs, layers and a small bench
suite) is written once (not timed). ``per-trial`` (the default) is what a sweep writes: one file per
trial and table (about 3 files per trial); ``chunked`` puts the same rows in files of 2,000 rows.
Each build runs in a fresh process (so its peak resident memory is its own) and times, without the
imports, reading the tables (``analysis.load_results``) and the whole build (read, aggregate, draw,
write the HTML, as ``svconv report``), ``--repeats`` times each:

- ``first``: the folder as a sweep leaves it when it did not finish (no compacted copy): every file is
  opened, and the compacted copy of ``svconv.results.compact`` is written on the way;
- ``later``: with the compacted copy in place, as after a finished sweep (``svconv sweep run``/``resume``
  bring it up to date) or any earlier report.

``--browser`` also opens each report in headless Chromium with the network off, twice: in real time,
where the DOM is taken as soon as the page has loaded (giving the time until the page is shown), and in
virtual time, which runs until every figure is drawn and checks them all drawn with no errors, giving
Chromium's wall time; the same wall time for an empty report is printed as the baseline. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svconv.cli_logging import parse_args_logging

logger = logging.getLogger(__name__)

LAYOUTS = {"per-trial": None, "chunked": 2000}  # layout -> chunk argument of write_synthetic_results


def measure_one(results: str, out: str) -> dict:
    """Build the report of ``results`` into ``out`` in this process: seconds to read the tables and in all
    (read, aggregate, draw, write the HTML), peak RSS (MiB), HTML size (MiB), figure count."""
    import resource

    from analysis.load import load_results
    from analysis.report import render_report

    t = time.perf_counter()
    tables = load_results(results)
    read_s = time.perf_counter() - t
    report = render_report(tables, results)
    Path(out).write_text(report.html, encoding="utf-8")
    build_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(read_s=read_s, build_s=build_s, peak_rss_mb=rss / 2**20 if sys.platform == "darwin" else rss / 2**10,
                html_mb=Path(out).stat().st_size / 2**20, figures=report.n_figures)  # fmt: skip


def _in_child(results: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bench.report_speed", "--measure", str(results), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"report build failed for {results}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _drop_compacted(results: Path) -> None:
    from svconv.results.compact import CACHE_DIR

    for table in results.iterdir():
        shutil.rmtree(table / CACHE_DIR, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="trial counts, comma-separated (default: 100,1000,10000)")
    parser.add_argument("--repeats", type=int, default=3, help="builds with the compacted copy per size (default 3)")
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default="per-trial",
                        help="per-trial: one file per trial and table, as sweeps write (default); chunked: 2,000 rows a file")
    parser.add_argument("--browser", action="store_true", help="also open each report in headless Chromium")
    parser.add_argument("--workdir", default=None, help="where the folders and reports go (default: a temporary folder)")
    parser.add_argument("--measure", nargs=2, metavar=("RESULTS", "HTML"), help=argparse.SUPPRESS)  # the child
    args = parse_args_logging(parser, argv)
    if args.measure:
        print(json.dumps(measure_one(*args.measure)))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers; got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        parser.error("--sizes must be positive integers and --repeats >= 1")

    from analysis.browser import find_chromium, open_page
    from analysis.report import build_report
    from analysis.synthetic import write_synthetic_results

    chromium = find_chromium() if args.browser else None
    if args.browser and chromium is None:
        logger.warning("no Chromium found: browser columns left empty")

    rows = []
    with tempfile.TemporaryDirectory(prefix="svconv-report-speed-") as tmp:
        work = Path(args.workdir or tmp)
        for n in sizes:
            res = work / f"results_{args.layout}_{n}"
            if not (res / "trials").is_dir():
                write_synthetic_results(res, n, chunk=LAYOUTS[args.layout])
            files = sum(1 for _ in res.glob("*/*.parquet"))
            out = work / f"report_{n}.html"
            first = []
            for _ in range(args.repeats):
                _drop_compacted(res)
                first.append(_in_child(res, out))
            later = [_in_child(res, out) for _ in range(args.repeats)]
            med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
            row = dict(n=n, files=files, first_read=med(first, "read_s"), first_s=med(first, "build_s"),
                       first_mb=max(r["peak_rss_mb"] for r in first), later_read=med(later, "read_s"),
                       later_s=med(later, "build_s"), later_mb=max(r["peak_rss_mb"] for r in later),
                       html_mb=first[0]["html_mb"], figures=first[0]["figures"], ready_ms=None, wall_s=None, ok="")  # fmt: skip
            if chromium:
                shown = open_page(out, chromium, real_time=True)
                page = open_page(out, chromium)
                good = page.rendered == page.figures and not page.errors and not page.console
                row.update(ready_ms=shown.ready_ms, wall_s=page.wall_s, ok="yes" if good else f"NO: {page.errors[:1]}")
            rows.append(row)
            logger.info("%d trials (%d files): first %.2f s, later %.2f s", n, files, row["first_s"], row["later_s"])

    baseline = None
    if chromium:
        with tempfile.TemporaryDirectory(prefix="svconv-report-speed-") as tmp:
            (Path(tmp) / "empty").mkdir()
            build_report(Path(tmp) / "empty", Path(tmp) / "empty.html", ("html",))
            baseline = open_page(Path(tmp) / "empty.html", chromium).wall_s
    print(f"\nlayout {args.layout}; one process per build, imports not timed; medians of {args.repeats} builds, "
          "peak RSS the largest\n")  # fmt: skip
    head = ("| trials | files | first: read (s) | first: build (s) | first: peak RSS (MiB) | later: read (s) "
            "| later: build (s) | later: peak RSS (MiB) | HTML (MiB) | figures |")  # fmt: skip
    sep = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    if chromium:
        head += " page shown (s) | Chromium wall, all drawn (s) | − empty-page wall (s) | all drawn, no errors |"
        sep += "---:|---:|---:|:---|"
    print(head + "\n" + sep)
    for r in rows:
        line = (f"| {r['n']:,} | {r['files']:,} | {r['first_read']:.2f} | {r['first_s']:.2f} | {r['first_mb']:.0f} "
                f"| {r['later_read']:.2f} | {r['later_s']:.2f} | {r['later_mb']:.0f} | {r['html_mb']:.2f} | {r['figures']} |")  # fmt: skip
        if chromium:
            ready = "–" if r["ready_ms"] is None else f"{r['ready_ms'] / 1000:.2f}"
            line += f" {ready} | {r['wall_s']:.2f} | {r['wall_s'] - baseline:.2f} | {r['ok']} |"
        print(line)
    if baseline is not None:
        print(f"\nempty report (Chromium start-up, plotly.js parsed): {baseline:.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
