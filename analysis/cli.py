"""`svconv report RESULTS_DIR -o report.html [--format html,csv,png]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Write one self-contained HTML report (plotly.js embedded, opens offline) of a results folder: "
    "summary tables beside the papers' numbers, clipping speedups, Pareto fronts, layer spectra, "
    "empirical Lipschitz histograms, training curves and failed trials. Sections without data say what "
    "they need. --format csv also writes the tables as CSV; png writes the figures (needs kaleido)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="results folder (trials/, epochs/, layers/, bench/)")
    parser.add_argument("-o", "--output", default=None, help="HTML file to write (default: RESULTS_DIR/report.html)")
    parser.add_argument(
        "--format", default="html", metavar="LIST",
        help="comma-separated outputs among html, csv, png (default: html). csv: tables in <output stem>_csv/; "
        "png: figures in <output stem>_png/ (needs the optional kaleido package)",
    )  # fmt: skip
    parser.add_argument("--title", default=None, help="page title (default: 'svconv report: RESULTS_DIR')")
    parser.add_argument(
        "--include-unlearned", action="store_true",
        help="draw trials that did not learn (trials column learned false) on the Pareto fronts; by default they "
        "are left out there, and marked in the tables and figures",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from analysis.report import build_report, parse_formats
    from svconv.cli_logging import quiet

    formats = parse_formats(args.format)
    output = Path(args.output) if args.output else Path(args.results_dir) / "report.html"
    try:
        written = build_report(args.results_dir, output, formats, title=args.title, progress=sys.stderr.isatty() and not quiet(),
                               include_unlearned=args.include_unlearned)  # fmt: skip
    except OSError as exc:  # e.g. -o existing_file/x.html: exit 2 naming the path, not a traceback
        where = exc.filename if exc.filename is not None else output
        raise ValueError(f"cannot write the report {str(output)!r}: {str(where)!r}: {exc.strerror or exc}") from exc
    report = written.report
    if written.html:
        print(f"report: {written.html} ({report.n_figures} figures)")
    if written.csv_dir:
        print(f"tables: {written.csv_dir}/ ({len(report.tables)} CSV files)")
    if written.png_dir:
        print(f"figures: {written.png_dir}/ ({report.n_figures} PNG files)")
    if report.missing:
        logger.warning("%d part(s) without data (named in the report):\n%s", len(report.missing),
                       "\n".join(f"  - {m}" for m in report.missing))
    for w in written.warnings:
        logger.warning("%s", w)
    return 0  # PNG is optional: without kaleido the warning above says so and the rest is written
