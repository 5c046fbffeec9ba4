"""``svconv`` entry point. Subcommands: train, bench, sweep, report.

Each subcommand lives in its owner package as a module with ``add_arguments(parser)`` and
``run(args) -> int``; those modules import heavy libraries (torch, ray) inside ``run`` so that
``svconv --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("svconv.train_cli", "train one model (one trial) and write its Parquet rows"),
    "bench": ("bench.cli", "microbenchmark the speed and accuracy of spectral methods"),
    "sweep": ("sweeps.cli", "run, submit, resume or inspect a Ray Tune sweep"),
    "report": ("analysis.cli", "write the HTML comparison report of a results folder"),
}


class CLIError(Exception):
    """A user error: printed on stderr without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svconv",
        description="Compute and control the singular values of convolutional layers: "
        "training trials, microbenchmarks, Ray Tune sweeps and HTML reports.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"svconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad input from the library: name the argument, no traceback
        print(f"svconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
