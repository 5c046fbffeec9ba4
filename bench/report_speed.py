"""Time to build the HTML report from synthetic results folders of growing size, and its size.

    python -m bench.report_speed [--sizes 100,1000,10000] [--repeats 3] [--browser] [--workdir DIR]

For each size, a synthetic folder (``analysis.synthetic``: trials with epochs, layers and a small bench
suite) is written once (not timed); then ``build_report`` (read Parquet, aggregate, draw, write the
HTML) is timed ``--repeats`` times and the median is printed. ``--browser`` also opens each report in
headless Chromium with the network off, twice: in real time, where the DOM is taken as soon as the
page has loaded (its text, tables and contents shown; the figures are drawn after that, one per task),
giving the page's real time to be shown; and in virtual time, which runs until every figure is drawn
and checks them all drawn with no errors, giving Chromium's wall time. The same wall time for an
empty report (start-up and plotly.js alone) is printed as the baseline: the difference is the cost of
drawing the figures. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="trial counts, comma-separated (default: 100,1000,10000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per size (default 3)")
    parser.add_argument("--browser", action="store_true", help="also open each report in headless Chromium")
    parser.add_argument("--workdir", default=None, help="where the folders and reports go (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers; got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        parser.error("--sizes must be positive integers and --repeats >= 1")

    t0 = time.perf_counter()
    from analysis.browser import find_chromium, open_page
    from analysis.report import build_report
    from analysis.synthetic import write_synthetic_results

    import_s = time.perf_counter() - t0
    chromium = find_chromium() if args.browser else None
    if args.browser and chromium is None:
        print("no Chromium found: browser columns left empty", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="svconv-report-speed-") as tmp:
        work = Path(args.workdir or tmp)
        rows = []
        for n in sizes:
            res = write_synthetic_results(work / f"results_{n}", n)
            out = work / f"report_{n}.html"
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                written = build_report(res, out, ("html",))
                times.append(time.perf_counter() - t)
            row = dict(n=n, build_s=statistics.median(times), best_s=min(times), mb=out.stat().st_size / 2**20,
                       figures=written.report.n_figures, ready_ms=None, wall_s=None, ok="")  # fmt: skip
            if chromium:
                shown = open_page(out, chromium, real_time=True)
                page = open_page(out, chromium)
                good = page.rendered == page.figures and not page.errors and not page.console
                row.update(ready_ms=shown.ready_ms, wall_s=page.wall_s, ok="yes" if good else f"NO: {page.errors[:1]}")
            rows.append(row)
            print(f"{n} trials: {row['build_s']:.2f} s", file=sys.stderr)

    baseline = None
    if chromium:
        with tempfile.TemporaryDirectory(prefix="svconv-report-speed-") as tmp:
            (Path(tmp) / "empty").mkdir()
            build_report(Path(tmp) / "empty", Path(tmp) / "empty.html", ("html",))
            baseline = open_page(Path(tmp) / "empty.html", chromium).wall_s
    print(f"\nimports (pandas, plotly, analysis): {import_s:.2f} s, not included below; median of {args.repeats} builds\n")
    head = "| trials | build (s, median) | build (s, best) | HTML (MiB) | figures |"
    sep = "|---:|---:|---:|---:|---:|"
    if chromium:
        head += " page shown (s) | Chromium wall, all drawn (s) | − empty-page wall (s) | all drawn, no errors |"
        sep += "---:|---:|---:|:---|"
    print(head + "\n" + sep)
    for r in rows:
        line = f"| {r['n']:,} | {r['build_s']:.2f} | {r['best_s']:.2f} | {r['mb']:.2f} | {r['figures']} |"
        if chromium:
            ready = "–" if r["ready_ms"] is None else f"{r['ready_ms'] / 1000:.2f}"
            line += f" {ready} | {r['wall_s']:.2f} | {r['wall_s'] - baseline:.2f} | {r['ok']} |"
        print(line)
    if baseline is not None:
        print(f"\nempty report (Chromium start-up, plotly.js parsed): {baseline:.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
